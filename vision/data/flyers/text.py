"""What a flyer says: typical small-ad content (a service, detail lines) and a phone number as printed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SERVICES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "开锁": (
        ("专业开锁", "开锁换锁", "开锁 修锁", "开锁公司"),
        ("换锁芯 开汽车锁", "开保险柜 防盗门", "公安备案 快速上门", "24小时服务"),
    ),
    "办证": (("办证", "办证刻章", "办 证"), ("各类证件 毕业证", "驾驶证 身份证", "刻章 发票", "保密 快速")),
    "疏通": (
        ("疏通下水道", "管道疏通", "通下水道"),
        ("马桶 地漏 厨房", "化粪池清理 抽粪", "高压清洗管道", "不通不收费"),
    ),
    "搬家": (
        ("搬家", "搬家拉货", "蚂蚁搬家"),
        ("长短途运输 居民搬家", "公司搬迁 钢琴搬运", "空调移机", "价格合理"),
    ),
    "贷款": (
        ("贷款", "无抵押贷款", "信用贷款"),
        ("当天放款 手续简单", "急用钱 快速到账", "车贷 房贷", "额度高 利息低"),
    ),
    "招聘": (
        ("招聘", "高薪诚聘", "急招"),
        ("服务员 厨师 保安", "月薪6000-12000", "包吃包住", "男女不限 18-45岁"),
    ),
    "回收": (("高价回收", "回收旧家电"), ("空调 电脑 冰箱", "废品 旧手机", "上门回收")),
    "维修": (("家电维修", "专业维修"), ("热水器 洗衣机 空调", "燃气灶 油烟机", "上门服务")),
    "出租": (("房屋出租", "旺铺转让", "单间出租"), ("拎包入住 家电齐全", "面议", "押一付一")),
    "装修": (("防水补漏", "刷墙 装修", "打孔"), ("水电改造 瓷砖", "外墙 屋顶", "免费上门勘察")),
}


TAGLINES = ("24小时服务", "随叫随到", "诚信经营", "价格合理", "微信同号", "全市上门", "质量保证")


CONTACT_PREFIXES = ("电话:", "联系电话:", "热线:", "手机:", "Tel:", "", "", "")


LANDLINE_AREAS = (
    "010",
    "020",
    "021",
    "022",
    "023",
    "024",
    "025",
    "027",
    "028",
    "029",
    "0371",
    "0311",
    "0351",
    "0431",
    "0451",
    "0531",
    "0551",
    "0571",
    "0591",
    "0755",
)


def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(str(d) for d in rng.integers(0, 10, n))


def mobile_number(rng: np.random.Generator) -> str:
    """A mainland mobile number: 1, then 3-9, then nine digits."""
    return "1" + str(int(rng.integers(3, 10))) + _digits(rng, 9)


def landline_number(rng: np.random.Generator) -> str:
    """A fixed-line number with its area code, canonical form `0371-12345678`."""
    area = LANDLINE_AREAS[int(rng.integers(len(LANDLINE_AREAS)))]
    return f"{area}-{int(rng.integers(2, 9))}{_digits(rng, 7)}"


def display_phone(number: str, rng: np.random.Generator) -> str:
    """How a number is printed: run together, spaced 3-4-4 or dashed, landlines with brackets."""
    if "-" in number:
        area, local = number.split("-")
        return f"({area}){local}" if rng.random() < 0.3 else number
    return [number, f"{number[:3]} {number[3:7]} {number[7:]}", f"{number[:3]}-{number[3:7]}-{number[7:]}"][
        int(rng.choice(3, p=[0.6, 0.25, 0.15]))
    ]


@dataclass(frozen=True)
class FlyerText:
    title: str
    lines: tuple[str, ...]
    prefix: str  # "电话:", "热线:" ... or ""
    number: str  # the number as printed: 138 1234 5678, (0371)12345678
    phones: tuple[str, ...]  # canonical numbers: 13812345678, 0371-12345678

    @property
    def contact(self) -> str:
        return self.prefix + self.number


def flyer_text(rng: np.random.Generator) -> FlyerText:
    """Typical small-ad content: a service, one to three detail lines and a phone number."""
    titles, details = SERVICES[list(SERVICES)[int(rng.integers(len(SERVICES)))]]
    title = titles[int(rng.integers(len(titles)))]
    count = int(rng.integers(1, min(3, len(details)) + 1))
    lines = tuple(details[i] for i in sorted(rng.choice(len(details), count, replace=False)))
    if rng.random() < 0.4:
        lines += (TAGLINES[int(rng.integers(len(TAGLINES)))],)
    number = landline_number(rng) if rng.random() < 0.12 else mobile_number(rng)
    prefix = CONTACT_PREFIXES[int(rng.integers(len(CONTACT_PREFIXES)))]
    return FlyerText(title, lines, prefix, display_phone(number, rng), (number,))
