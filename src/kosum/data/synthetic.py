"""Synthetic Korean corpus in the AI-Hub 582 file format, for the demo and the tests.

Writes `REPORT-<category>-<NNNNN>-<NNNNN>.json` files structured exactly like the real ones (same
keys, tab-indented UTF-8 JSON, `passage` with the "\\n  " line layout, summary3 null in `2~3sent`
and a string in `20per`) under `<set>/<Training|Validation>/<Korean category folder>/`, or one
zip per set whose member names are CP949-encoded like Korean Windows archivers write them.

Each category has its own vocabulary and sentence templates, and its one-sentence `summary1`
restates the lead sentence's key slots (entity, event, number) in a fixed per-category pattern,
so a model can learn it and category transfer is measurable. Everything comes from a seeded
`random.Random`: the same arguments give byte-identical files. Every file says it is synthetic
(publisher "kosum-synthetic").

Not for: estimating quality on real data; the text is templated, not natural.
"""

from __future__ import annotations

import json
import math
import random
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kosum.data.aihub import CATEGORIES, SETS
from kosum.errors import InputError
from kosum.io import atomic_open

PUBLISHER = "kosum-synthetic"
_ORIGIN = "kosum-synthetic (templated synthetic text, not a real document)"
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)
_SECOND_PASSAGE_RATE = 0.15
# Article numbers of the n-th set start at n * this, so ids never repeat across sets.
_SET_NUMBER_OFFSET = 50_000


@dataclass(frozen=True)
class _Spec:
    """How one category's documents look: slot vocabularies and sentence templates.

    Templates use `{slot}` (the document's value), `{slot2}` (a fresh value from the same pool
    for this sentence only) and `{slot:은}` (the value plus the right particle for its last
    syllable: 이/가, 은/는, 을/를, 과/와, 으로/로).
    """

    folder: str
    style: str
    pools: dict[str, tuple[str, ...]]
    title: str
    lead: tuple[str, ...]
    summary: str
    body: tuple[str, ...]


_SURNAMES = "김이박최정강조윤장임한오서신권황안송류홍"
_GIVEN = "민서지현수영준호은우하윤도진성아연재경혜"


def _person(rng: random.Random) -> str:
    return rng.choice(_SURNAMES) + rng.choice(_GIVEN) + rng.choice(_GIVEN)


_GENERATED: dict[str, Callable[[random.Random], str]] = {
    "num": lambda r: str(r.randint(2, 95)),
    "big": lambda r: f"{r.randint(12, 480) * 10:,}",
    "pct": lambda r: str(r.randint(3, 48)),
    "year": lambda r: str(r.randint(2009, 2023)),
    "month": lambda r: f"{r.randint(1, 12)}월",
    "day": lambda r: f"{r.randint(1, 28)}일",
    "century": lambda r: str(r.randint(5, 18)),
    "hour": lambda r: str(r.randint(1, 6)),
    "age": lambda r: str(r.randint(19, 39)),
    "person": _person,
}

# Category-neutral sentences in each register, mixed into the bodies.
_GENERIC: dict[str, tuple[str, ...]] = {
    "report": (
        "관련 내용은 앞으로 더 구체화될 전망이다.",
        "이에 대한 평가는 엇갈리고 있다.",
        "앞으로의 귀추가 주목된다.",
        "{year}년 이후 비슷한 논의가 여러 차례 이어져 왔다.",
        "관계자들은 후속 조치를 신중하게 검토하고 있다.",
        "이 같은 흐름은 당분간 계속될 것으로 보인다.",
    ),
    "polite": (
        "이 점을 다시 한번 말씀드립니다.",
        "함께 생각해 볼 문제입니다.",
        "시간이 흐르며 많은 것이 달라졌습니다.",
        "{year}년에도 비슷한 일이 있었습니다.",
        "그 의미는 결코 작지 않습니다.",
        "앞으로도 관심을 가지고 지켜봐야 하겠습니다.",
    ),
    "story": (
        "시간은 멈춘 듯 천천히 흘렀다.",
        "어디선가 개 짖는 소리가 들렸다.",
        "하늘에는 옅은 구름이 낮게 깔려 있었다.",
        "{year}년의 그날도 이렇게 조용했다.",
        "마음 한구석이 묘하게 시큰거렸다.",
        "골목 끝 가로등이 하나둘 켜지기 시작했다.",
    ),
}

_SPECS: dict[str, _Spec] = {
    "news_r": _Spec(
        folder="신문기사",
        style="report",
        pools={
            "subject": (
                "서울시",
                "부산시",
                "인천시",
                "대구시",
                "광주시",
                "대전시",
                "울산시",
                "세종시",
                "수원시",
                "제주도",
            ),
            "topic": (
                "청년 주거 지원 사업",
                "도심 녹지 확충 사업",
                "대중교통 혁신 사업",
                "전통시장 현대화 사업",
                "스마트 도시 구축 사업",
                "노후 상수도 정비 사업",
                "공공 와이파이 확대 사업",
                "어린이 보호구역 개선 사업",
            ),
        },
        title="{subject}, {topic}에 {num}억 원 투입",
        lead=("{subject:이} {month} {day} {topic}에 {num}억 원을 투입하겠다고 밝혔다.",),
        summary="{subject:은} {topic}에 {num}억 원을 투입하기로 했다.",
        body=(
            '{subject} 관계자는 "시민들이 체감할 수 있는 변화를 만들겠다"고 말했다.',
            "이번 사업은 지난해 {subject2}에서 추진된 시범 사업의 성과를 바탕으로 마련됐다.",
            "{subject:은} 올해 하반기까지 세부 실행 계획을 확정할 예정이다.",
            "전문가들은 예산 집행 과정의 투명성을 높여야 한다고 지적했다.",
            '{person} {subject} 의원은 "사업 효과를 꼼꼼히 점검하겠다"고 강조했다.',
            "지역 상인들과 주민들은 대체로 환영한다는 반응을 보였다.",
            "다만 일부 시민단체는 사업 대상 선정 기준이 모호하다고 비판했다.",
            "{subject:은} 내년에 사업 규모를 {pct}% 늘리는 방안도 검토하고 있다.",
            "업계에서는 이번 사업으로 일자리 {big}여 개가 새로 생길 것으로 내다봤다.",
        ),
    ),
    "briefing": _Spec(
        folder="보도자료",
        style="report",
        pools={
            "subject": (
                "과학기술정보통신부",
                "환경부",
                "보건복지부",
                "고용노동부",
                "농림축산식품부",
                "중소벤처기업부",
                "국토교통부",
                "문화체육관광부",
            ),
            "topic": (
                "디지털 인재 양성",
                "탄소중립 실천",
                "감염병 대응 역량 강화",
                "청년 일자리 창출",
                "스마트 농업 확산",
                "소상공인 경영 안정",
                "지역 균형 발전",
                "문화 콘텐츠 수출 지원",
            ),
            "rank": ("장관", "차관", "실장", "국장"),
        },
        title="{subject}, {topic} 공모 사업 시행",
        lead=(
            "{subject:은} {month} {day} {topic:을} 위한 공모 사업을 시작하고 올해 {num}개 "
            "기관을 선정한다고 밝혔다.",
        ),
        summary="{subject:은} {topic:을} 위해 올해 {num}개 기관을 선정한다.",
        body=(
            "선정된 기관에는 기관당 최대 {big}만 원의 사업비가 지원된다.",
            "신청은 {month2} 말까지 누리집을 통해 온라인으로 접수한다.",
            '{person} {subject} {rank:은} "현장의 목소리를 반영해 제도를 보완하겠다"고 밝혔다.',
            "{subject:은} 지난해 사업 참여 기관의 만족도가 {pct}%에 달했다고 설명했다.",
            "자세한 공모 요강은 {subject} 누리집 공지사항에서 확인할 수 있다.",
            "심사는 서면 평가와 발표 평가를 거쳐 진행된다.",
            "{subject:은} 관계 부처와 협력해 성과 관리 체계도 마련할 계획이다.",
            "올해부터는 지방자치단체와의 협업 과제에 가점이 부여된다.",
            "{subject2}도 비슷한 지원 사업을 준비하고 있는 것으로 알려졌다.",
        ),
    ),
    "his_cul": _Spec(
        folder="역사문화",
        style="report",
        pools={
            "heritage": (
                "경복궁 근정전",
                "불국사 석가탑",
                "수원 화성",
                "해인사 장경판전",
                "창덕궁 후원",
                "부석사 무량수전",
                "종묘 정전",
                "경주 첨성대",
            ),
            "era": ("조선 전기", "조선 후기", "통일신라", "고려 말", "고려 초", "삼국 시대"),
        },
        title="[문화유산 이야기] {heritage}",
        lead=("{heritage:은} {century}세기 {era} 시기에 처음 세워진 것으로 전해진다.",),
        summary="{heritage:은} {century}세기 {era} 시기에 세워진 문화유산이다.",
        body=(
            "건물의 구조는 당시 건축 기술의 특징을 잘 보여 준다.",
            "{year}년에는 대대적인 보수 공사가 진행되기도 했다.",
            "학계에서는 {heritage2:과}의 양식 비교 연구가 활발하다.",
            "해마다 {big}여 명의 관람객이 이곳을 찾는다.",
            "문화재청은 훼손을 막기 위해 정기적인 안전 점검을 하고 있다.",
            "옛 문헌에는 이곳에서 왕실 의례가 열렸다는 기록이 남아 있다.",
            "주변에서는 당시 생활상을 보여 주는 유물도 다수 출토되었다.",
            '{person} 교수는 "보존과 활용의 균형이 중요하다"고 말했다.',
            "야간 개장 기간에는 전통 공연도 함께 열린다.",
        ),
    ),
    "paper": _Spec(
        folder="학술논문",
        style="report",
        pools={
            "group": ("청소년", "대학생", "직장인", "노인", "초등학생 학부모", "간호사"),
            "topic": (
                "스마트폰 이용 시간",
                "사회적 지지",
                "직무 스트레스",
                "신체 활동",
                "독서 습관",
                "수면의 질",
            ),
            "outcome": ("학업 성취도", "삶의 만족도", "우울감", "자아존중감", "이직 의도"),
            "method": ("설문조사", "회귀분석", "구조방정식 모형", "심층 면접"),
        },
        title="{topic:이} {outcome}에 미치는 영향",
        lead=(
            "본 연구는 {group} {big}명을 대상으로 {topic:이} {outcome}에 미치는 영향을 "
            "{method:으로} 분석하였다.",
        ),
        summary="{group} {big}명을 분석한 결과 {topic:은} {outcome}에 유의한 영향을 미쳤다.",
        body=(
            "분석 결과 {topic:과} {outcome} 사이에는 유의미한 상관관계가 확인되었다.",
            "특히 {group2} 집단에서는 그 효과가 더 크게 나타났다.",
            "연구 대상자의 평균 연령은 {age}세였다.",
            "선행 연구들은 {topic2:이} 중요한 변수라는 점을 지적해 왔다.",
            "자료는 {year}년에 수집되었으며 응답률은 {pct}%였다.",
            "이러한 결과는 관련 정책 수립에 시사점을 제공한다.",
            "다만 본 연구는 횡단 자료를 사용하였다는 한계를 지닌다.",
            "후속 연구에서는 종단 자료를 활용한 검증이 필요하다.",
            "통제 변수로는 성별, 연령, 소득 수준을 투입하였다.",
        ),
    ),
    "minute": _Spec(
        folder="회의록",
        style="polite",
        pools={
            "council": (
                "서울시의회",
                "경기도의회",
                "부산시의회",
                "충청남도의회",
                "전라북도의회",
                "강원도의회",
            ),
            "committee": (
                "행정자치위원회",
                "교육위원회",
                "환경수자원위원회",
                "보건복지위원회",
                "도시계획위원회",
            ),
            "agenda": (
                "공유재산 관리계획 변경안",
                "청소년 수련시설 운영 조례안",
                "재난안전 기본계획 동의안",
                "공공도서관 설치 조례 개정안",
                "도시공원 조성 계획안",
            ),
        },
        title="제{num}회 {council} {committee} 회의록",
        lead=(
            "제{num}회 {council} {committee} 회의에서 {agenda:이} 상정되어 원안대로 "
            "가결되었습니다.",
        ),
        summary="{council} {committee:은} 제{num}회 회의에서 {agenda:을} 원안 가결했다.",
        body=(
            "위원장 {person}: 성원이 되었으므로 회의를 개의하겠습니다.",
            "{person2} 위원: 예산 편성의 근거를 구체적으로 설명해 주시기 바랍니다.",
            "담당 국장: 관련 자료는 회의가 끝난 뒤 서면으로 제출하겠습니다.",
            "{person2} 위원: 주민 의견 수렴 절차가 충분했는지 묻고 싶습니다.",
            "위원장 {person}: 질의하실 위원이 더 계시지 않으므로 질의를 종결하겠습니다.",
            "이어서 {agenda2}에 대한 제안 설명이 있었습니다.",
            "전문위원은 검토 보고를 통해 일부 조문의 자구 수정이 필요하다고 보고하였습니다.",
            "회의는 오후 {hour}시에 정회되었다가 다시 속개되었습니다.",
            "{person2} 위원: 집행부의 성실한 답변을 부탁드립니다.",
        ),
    ),
    "edit": _Spec(
        folder="사설",
        style="report",
        pools={
            "issue": (
                "저출산",
                "청년 실업",
                "가계부채",
                "지방 소멸",
                "미세먼지",
                "의료 인력 부족",
                "전세 사기",
                "노인 빈곤",
            ),
            "actor": ("정부", "국회", "지자체", "교육 당국", "금융 당국", "보건 당국"),
            "remedy": (
                "세제 지원",
                "규제 정비",
                "예산 확충",
                "전담 기구 신설",
                "법 개정",
                "현장 점검 강화",
            ),
        },
        title="[사설] {issue}, 더는 미룰 수 없다",
        # The summary restates three slots of the lead (an editorial's one-slot summary was
        # learnt by every method to ROUGE 100 from a handful of examples).
        lead=(
            "{issue} 문제가 갈수록 심각해지고 있지만 {actor}의 대책은 여전히 제자리걸음이어서 "
            "{remedy}의 필요성이 커지고 있다.",
        ),
        summary="{actor:은} {issue} 문제를 풀기 위해 {remedy:을} 서둘러야 한다.",
        body=(
            "최근 발표된 통계에 따르면 관련 지표는 1년 새 {pct}% 악화됐다.",
            "그동안 정부가 내놓은 대책은 단기 처방에 그쳤다는 비판을 받아 왔다.",
            "국회 역시 관련 법안을 {num}개월째 처리하지 못하고 있다.",
            "문제의 근본 원인을 짚지 않는 한 같은 상황은 되풀이될 수밖에 없다.",
            "{issue2} 문제와 마찬가지로 이 사안도 장기적인 안목이 필요하다.",
            "해외 주요국의 사례를 참고해 제도를 정비할 필요가 있다.",
            "여야는 정쟁을 멈추고 머리를 맞대야 한다.",
            "더 늦기 전에 범정부 차원의 대응 체계를 갖춰야 할 것이다.",
            "현장의 목소리에 귀를 기울이는 것이 해법의 출발점이다.",
        ),
    ),
    "public": _Spec(
        folder="공공문서",
        style="report",
        pools={
            "agency": (
                "국민건강보험공단",
                "한국장학재단",
                "근로복지공단",
                "한국토지주택공사",
                "국민연금공단",
                "한국산업인력공단",
            ),
            "program": (
                "청년 인턴십",
                "취약계층 주거 지원",
                "중장년 재취업 교육",
                "저소득층 장학금",
                "농촌 일손 돕기",
                "디지털 역량 교육",
            ),
        },
        title="{year}년 {program} 참여자 모집 공고",
        lead=(
            "{agency:은} {year}년 {program} 참여자를 {month} {day}부터 모집하며 모두 "
            "{big}명을 선발한다.",
        ),
        summary="{agency:은} {year}년 {program} 참여자 {big}명을 모집한다.",
        body=(
            "신청 자격은 공고일 현재 만 {age}세 이상인 국민이다.",
            "신청서는 {agency} 누리집 또는 가까운 지사에서 제출할 수 있다.",
            "선발 결과는 {month2} 중 개별 통보할 예정이다.",
            "제출 서류가 미비한 경우 선발 대상에서 제외될 수 있다.",
            "자세한 사항은 고객센터로 문의하면 안내받을 수 있다.",
            "지난해에는 {pct}%의 참여자가 과정을 끝까지 이수했다.",
            "참여자에게는 매월 활동비 {num}만 원이 지급된다.",
            "개인정보는 선발 목적 외에는 사용되지 않는다.",
            "{program2} 사업과의 중복 참여는 허용되지 않는다.",
        ),
    ),
    "speech": _Spec(
        folder="연설문",
        style="polite",
        pools={
            "audience": ("국민", "졸업생", "시민", "장병", "기업인", "선생님"),
            "event": (
                "개교 기념식",
                "신년 하례회",
                "광복절 경축식",
                "졸업식",
                "창립 기념식",
                "체육대회 개막식",
            ),
            "theme": (
                "도전 정신",
                "공동체의 연대",
                "미래 세대에 대한 책임",
                "혁신과 변화",
                "평화와 통일",
                "나눔의 가치",
            ),
        },
        title="{event} 기념사",
        lead=(
            "존경하는 {audience} 여러분, 오늘 {event}에 함께해 주셔서 진심으로 감사드립니다.",
            "오늘 저는 {theme}에 대해 말씀드리고자 합니다.",
        ),
        summary="연설자는 {event}에 함께한 {audience}에게 감사를 전하며 {theme}의 중요성을 "
        "강조했다.",
        body=(
            "지난 {num}년 동안 우리는 많은 어려움을 함께 이겨 냈습니다.",
            "여러분 한 사람 한 사람의 노력이 오늘의 성과를 만들었습니다.",
            "앞으로의 길이 결코 쉽지는 않을 것입니다.",
            "그러나 우리가 힘을 모은다면 이루지 못할 일은 없습니다.",
            "{person} 선생님의 말씀처럼 작은 실천이 큰 변화를 만듭니다.",
            "저 역시 맡은 자리에서 최선을 다하겠습니다.",
            "{theme2}도 우리가 잊지 말아야 할 가치입니다.",
            "다시 한번 이 자리에 함께해 주신 모든 분께 감사드립니다.",
        ),
    ),
    "literature": _Spec(
        folder="문학",
        style="story",
        pools={
            "character": ("수진", "민호", "할머니", "소년", "지은", "늙은 어부"),
            "place": ("바닷가 마을", "기차역 대합실", "시골 장터", "눈 덮인 산사", "오래된 서점"),
            "relation": ("옛 친구", "첫사랑", "동생", "스승", "아버지"),
            "season": ("봄", "여름", "가을", "겨울"),
        },
        title="{place}에서",
        lead=(
            "{season}의 어느 날, {character:은} {place}에서 오래전 헤어진 {relation:을} "
            "다시 만났다.",
        ),
        summary="{character:이} {season}날 {place}에서 오래전 헤어진 {relation:과} 재회하는 "
        "이야기이다.",
        body=(
            "바람이 불 때마다 낡은 간판이 삐걱거렸다.",
            "두 사람은 한동안 아무 말도 하지 못했다.",
            "{character:은} 주머니 속 편지를 만지작거렸다.",
            "창밖으로 {season2} 햇살이 느리게 기울고 있었다.",
            "그날의 기억은 여전히 선명하게 남아 있었다.",
            '"잘 지냈어?" 먼저 말을 건넨 것은 {relation} 쪽이었다.',
            "멀리서 기적 소리가 희미하게 들려왔다.",
            "{num}년이라는 시간은 생각보다 길지 않았다.",
            "두 사람은 다음에 다시 만나자는 약속을 남기고 헤어졌다.",
        ),
    ),
    "narration": _Spec(
        folder="내레이션",
        style="polite",
        pools={
            "region": (
                "강원도 깊은 산골",
                "제주 앞바다",
                "서해 갯벌",
                "지리산 계곡",
                "낙동강 하구",
                "울릉도 해안",
            ),
            "habitat": ("숲", "바위틈", "습지", "물가", "풀숲"),
            "animal": ("수달", "삵", "저어새", "반딧불이", "산양", "물범", "두루미"),
        },
        title="{region}의 {animal}",
        lead=("{region}의 {habitat}에는 {animal:이} 살고 있습니다.",),
        summary="{region} {habitat}에 사는 {animal}의 생태를 소개한다.",
        body=(
            "이른 아침, 안개가 걷히면 하루가 시작됩니다.",
            "{animal:은} 해가 지면 먹이를 찾아 움직이기 시작합니다.",
            "이곳에서 확인된 개체 수는 {num}마리에 불과합니다.",
            "계절이 바뀌면 풍경도 완전히 달라집니다.",
            "천적인 {animal2:을} 피해 몸을 숨기기도 합니다.",
            "새끼들은 어미 곁에서 살아가는 법을 배웁니다.",
            "사람의 발길이 늘면서 서식지는 점점 줄어들고 있습니다.",
            "연구진은 {year}년부터 이곳을 꾸준히 관찰해 왔습니다.",
            "자연은 오늘도 조용히 제 속도로 흘러갑니다.",
        ),
    ),
}

MIN_SENTENCES, MAX_SENTENCES = 5, 15

_SLOT = re.compile(r"\{([a-z]+)(2?)(?::([가-힣]+))?\}")
_PARTICLES = (("이", "가"), ("은", "는"), ("을", "를"), ("과", "와"), ("으로", "로"))
_PARTICLE_PAIR = {p: pair for pair in _PARTICLES for p in pair}
_RIEUL = 8  # final-consonant index of ㄹ, which takes 로 rather than 으로


def _particle(word: str, marker: str) -> str:
    """The particle of `marker`'s pair that follows `word` (batchim rule; digits read aloud)."""
    with_final, without_final = _PARTICLE_PAIR[marker]
    last = word[-1]
    if "가" <= last <= "힣":
        final = (ord(last) - 0xAC00) % 28
        if final == _RIEUL and with_final == "으로":
            return without_final
        return with_final if final else without_final
    return with_final if last in "013678" else without_final


class _Document:
    """One passage's slot values; renders its sentences, summary1 and the article title."""

    def __init__(self, spec: _Spec, rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng
        self.values = {name: rng.choice(pool) for name, pool in spec.pools.items()}
        self.values.update({name: make(rng) for name, make in _GENERATED.items()})

    def _fresh(self, name: str) -> str:
        pool = self.spec.pools.get(name)
        if pool is None:
            return _GENERATED[name](self.rng)
        return self.rng.choice([v for v in pool if v != self.values[name]] or list(pool))

    def render(self, template: str) -> str:
        def fill(match: re.Match[str]) -> str:
            name, fresh, marker = match.groups()
            word = self._fresh(name) if fresh else self.values[name]
            return word + (_particle(word, marker) if marker else "")

        return _SLOT.sub(fill, template)

    def passage(self) -> tuple[list[str], str]:
        """(sentences, summary1): the lead and summary share this document's slot values."""
        count = self.rng.randint(MIN_SENTENCES, MAX_SENTENCES) - len(self.spec.lead)
        body = self.rng.sample(self.spec.body + _GENERIC[self.spec.style], count)
        sentences = [self.render(t) for t in (*self.spec.lead, *body)]
        return sentences, self.render(self.spec.summary)


def _extract(rng: random.Random, sentences: list[str], count: int) -> str:
    """An extractive summary: the lead plus `count - 1` other sentences, in passage order."""
    rest = sorted(rng.sample(range(1, len(sentences)), count - 1))
    return " ".join(sentences[i] for i in (0, *rest))


def _passage_json(
    meta: dict[str, str], passage_no: int, set_name: str, doc: _Document
) -> dict[str, Any]:
    sentences, summary1 = doc.passage()
    passage = "\n  ".join(sentences)
    summary3 = summary3_count = None
    if set_name == "20per":
        summary3_count = max(1, math.ceil(0.2 * len(sentences)))
        summary3 = _extract(doc.rng, sentences, summary3_count)
    return {
        "Meta(Acqusition)": meta,
        "Meta(Refine)": {
            "passage_id": f"{meta['doc_id']}-{passage_no:05d}",
            "passage": passage,
            "passage_Cnt": len(passage),
        },
        "Annotation": {
            "summary1": summary1,
            "summary2": _extract(doc.rng, sentences, doc.rng.randint(2, 3)),
            "summary3": summary3,
            "summary_3_cnt": summary3_count,
        },
    }


def _category_files(
    category: str, set_name: str, count: int, seed: int, validation_fraction: float
) -> dict[str, bytes]:
    """{relative path: file bytes} for `count` passages of one category in one set."""
    spec = _SPECS[category]
    rng = random.Random(f"kosum-synthetic/{seed}/{set_name}/{category}")
    articles: list[list[dict[str, Any]]] = []
    number, made = SETS.index(set_name) * _SET_NUMBER_OFFSET, 0
    while made < count:
        number += rng.randint(1, 9)
        first = _Document(spec, rng)
        meta = {
            "doc_id": f"REPORT-{category}-{number:05d}",
            "doc_category": "REPORT",
            "doc_type": category,
            "doc_name": first.render(spec.title),
            "author": _person(rng),
            "publisher": PUBLISHER,
            "publisher_year": first.values["year"],
            "doc_origin": _ORIGIN,
        }
        docs = [_passage_json(meta, 1, set_name, first)]
        if count - made >= 2 and rng.random() < _SECOND_PASSAGE_RATE:
            docs.append(_passage_json(meta, 2, set_name, _Document(spec, rng)))
        articles.append(docs)
        made += len(docs)
    order = list(range(len(articles)))
    rng.shuffle(order)
    validation = set(order[: round(validation_fraction * len(articles))])
    files: dict[str, bytes] = {}
    for index, docs in enumerate(articles):
        split = "Validation" if index in validation else "Training"
        for data in docs:
            name = f"{data['Meta(Refine)']['passage_id']}.json"
            text = json.dumps(data, ensure_ascii=False, indent="\t")
            files[f"{set_name}/{split}/{spec.folder}/{name}"] = text.encode("utf-8")
    return files


class _Cp949ZipInfo(zipfile.ZipInfo):
    """A member whose name is stored CP949-encoded without the UTF-8 flag, as Korean Windows
    archivers write them (zipfile itself only writes ASCII or flagged UTF-8 names)."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.filename.encode("cp949"), self.flag_bits & ~0x800


def _write_zip(path: Path, files: dict[str, bytes]) -> None:
    with atomic_open(path, "wb") as handle, zipfile.ZipFile(handle, "w") as archive:
        for name in sorted(files):
            info = _Cp949ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])


def generate_corpus(
    out_dir: str | Path,
    docs_per_category: int = 40,
    categories: Sequence[str] = CATEGORIES,
    sets: Sequence[str] = ("2~3sent",),
    seed: int = 0,
    validation_fraction: float = 0.2,
    zip_output: bool = False,
) -> Path:
    """Write a synthetic AI-Hub 582 corpus under `out_dir` and return `out_dir`.

    `docs_per_category` passages (files) per category and set; about 15% of articles have two
    passages sharing a doc_id. `validation_fraction` of the articles go to `Validation`. With
    `zip_output`, writes `<out_dir>/<set>.zip` (CP949 member names) instead of folders.
    """
    unknown = sorted(set(categories) - set(CATEGORIES)) + sorted(set(sets) - set(SETS))
    if unknown:
        raise InputError(f"unknown categories/sets {unknown}; known: {CATEGORIES}, {SETS}")
    if docs_per_category < 1 or not 0 <= validation_fraction < 1:
        raise InputError("need docs_per_category >= 1 and 0 <= validation_fraction < 1")
    out = Path(out_dir)
    for set_name in sets:
        files: dict[str, bytes] = {}
        for category in categories:
            files.update(
                _category_files(category, set_name, docs_per_category, seed, validation_fraction)
            )
        if zip_output:
            _write_zip(out / f"{set_name}.zip", files)
            continue
        for name, data in files.items():
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return out
