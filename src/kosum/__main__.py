"""`python -m kosum`: the commands kosum installs and what each does."""

from __future__ import annotations

import sys

COMMANDS = {
    "kosum-train": "train and test one configuration, or a sweep with --multirun",
    "kosum-eval": "evaluate a trained run (or an adapter folder) on a split or another data set",
    "kosum-predict": "summarise a CSV with a trained run: a competition submission",
    "kosum-report": "tables, significance tests and plots from sweep folders",
    "kosum-estimate": "memory a training run needs, and whether it fits a GPU",
    "kosum-data": "inspect summarisation corpora (counts, lengths) and write synthetic ones",
    "kosum-rouge": "Korean ROUGE of prediction files against references",
}


def main() -> int:
    print("kosum: parameter-efficient fine-tuning of Korean summarisation models\n")
    width = max(map(len, COMMANDS))
    for command, what in COMMANDS.items():
        print(f"  {command:<{width}}  {what}")
    print("\n`<command> --help` for a command's options; README.md for examples.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
