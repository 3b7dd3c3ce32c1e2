"""What the command-line tools report as the user's mistake (one line, exit 2) and what they
leave as a bug (with its traceback)."""

from __future__ import annotations

from hydra.errors import InstantiationException
from omegaconf import OmegaConf
from omegaconf.errors import InterpolationKeyError, MissingMandatoryValue

from kosum.data.aihub import NoDocumentsError
from kosum.errors import InputError, user_error
from kosum.training.config_checks import ConfigError


def test_users_mistakes_are_told_apart_from_bugs():
    for mistake in (
        InputError("data.csv: missing column"),
        ConfigError("trainer.precision=16-mixed"),
        NoDocumentsError("no documents"),
        FileNotFoundError("no such file"),
    ):
        assert user_error(mistake) is mistake
    wrapped = InstantiationException("Error in call to target")
    wrapped.__cause__ = cause = InputError("table file has no 'summary' column")
    assert user_error(wrapped) is cause
    try:
        OmegaConf.create({"path": "???"}).path  # noqa: B018 (the access raises)
    except MissingMandatoryValue as unset:
        assert user_error(unset) is unset
    try:
        OmegaConf.create({"size": "${nope}"}).size  # noqa: B018
    except InterpolationKeyError as broken:
        assert user_error(broken) is broken
    for bug in (ValueError("too many values to unpack"), TypeError("bad operand"), KeyError("x")):
        assert user_error(bug) is None
    assert user_error(InstantiationException("no cause")) is None
