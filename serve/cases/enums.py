"""The closed sets of values the case tables store, one `StrEnum` each.

The database refuses anything else (a CHECK constraint per column, serve/cases/orm.py; added to
older databases by migration 0003). Members are strings, so they compare equal to their values
and serialise as them in JSON, CSV and templates. A new value is a new member and a migration
that widens the column's constraint.
"""

from __future__ import annotations

from enum import StrEnum

# What an API key may do (api_keys.scopes; Settings rates them): annotate: Label Studio;
# evidence:raw: images without faces and plates blurred (serve/api/redaction.py)
SCOPES = ("detect", "report", "cases:read", "cases:write", "annotate", "evidence:raw", "admin")


class PhotoStatus(StrEnum):
    """What became of a photo that entered (serve/cases/intake.py)."""

    DONE = "done"  # located and dated: its findings were filed
    UNREADABLE = "unreadable"  # not a usable image; `error` says why
    UNLOCATED = "unlocated"  # no position (EXIF GPS or given): findings seen, nothing filed
    UNDATED = "undated"  # a position but no capture time (EXIF or given): findings seen, nothing filed
    OUTSIDE = "outside"  # a position outside every unit grid: not the bureau's, findings seen, nothing filed


class PhotoSource(StrEnum):
    """Which door a photo came in by."""

    PATROL = "patrol"  # `streetorder scan` of a patrol archive
    UPLOAD = "upload"  # POST /v1/reports


class CaseSource(StrEnum):
    """Where a problem came from (问题来源); the domain's list, of which intake writes three."""

    PATROL_PHOTO = "patrol_photo"  # scan and POST /v1/reports
    VIDEO = "video"  # a fixed camera's rules
    PUBLIC = "public"  # a citizen, through Open311
    INSPECTOR = "inspector"
    HOTLINE = "hotline"
    LEADER = "leader"
    MEDIA = "media"


class RecordType(StrEnum):
    EVENT = "event"  # 事件
    COMPONENT = "component"  # 部件


class AiReview(StrEnum):
    """A person's review of an AI finding (AI match review); null for findings made by people."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    CORRECTED = "corrected"
    REJECTED = "rejected"


class EvidenceRole(StrEnum):
    FINDING = "finding"  # the photo or frame the problem was found on
    NEAR = "near"  # 近景
    FAR = "far"  # 远景
    REFERENCE = "reference"  # e.g. a citizen's request text and media link
    BEFORE = "before"  # 处置前
    AFTER = "after"  # 处置后: what `handle` needs


class State(StrEnum):
    REPORTED = "reported"  # 上报 / 待核实: a finding or citizen report awaiting a person's review
    VERIFIED = "verified"  # 核实属实, waiting to be filed
    NOT_FILED = "not_filed"  # 不予立案: AI finding rejected or report not valid
    FILED = "filed"  # 立案
    DISPATCHED = "dispatched"  # 派遣 to a department
    HANDLING = "handling"  # 处理中 (also after a failed check: 返工)
    HANDLED = "handled"  # 处理完毕, after-photo given, pending check (待核查)
    CHECK_PASSED = "check_passed"  # 核查通过, waiting to be closed
    CLOSED = "closed"  # 结案
    SUSPENDED = "suspended"  # 挂账: cannot be handled for now
    CANCELLED = "cancelled"  # 作废
    FORCE_CLOSED = "force_closed"  # 强制结案


class Action(StrEnum):
    """A workflow transition (POST /v1/cases/{id}/transitions), logged as a flow-log step."""

    CONFIRM = "confirm"  # AI finding / report is true as found
    CORRECT = "correct"  # true, but of another event class
    REJECT = "reject"  # false finding: not filed
    FILE = "file"
    DISPATCH = "dispatch"
    SEND_BACK = "send_back"  # 回退: the department returns it to the dispatcher
    START = "start"
    HANDLE = "handle"  # report handled, with an after-photo
    CHECK_PASS = "check_pass"
    CHECK_FAIL = "check_fail"  # 返工: back to handling
    SUSPEND = "suspend"
    RESUME = "resume"
    EXTEND = "extend"  # 延期: deadline moved, state kept
    CANCEL = "cancel"
    CLOSE = "close"
    FORCE_CLOSE = "force_close"


class EvidenceStep(StrEnum):
    """A flow-log step that regroups a case's evidence (serve/cases/regrouping.py); the state stays."""

    DETACH = "detach"  # a photo taken off the case with a reason (the photo and its file are kept)
    SPLIT = "split"  # photos moved to a new case of the same event (in both cases' logs)
    MERGE = "merge"  # another case's photos moved in; that case is cancelled as merged


REPORT_STEP = "report"  # the first flow-log step of every case: the finding or request that opened it
FLOW_STEPS = (REPORT_STEP, *(action.value for action in Action), *(step.value for step in EvidenceStep))


class Role(StrEnum):
    """What a person does at the centre (数字城管 roles); decides the actions and cases they may touch."""

    OPERATOR = "operator"  # 受理员: verifies reports and files cases
    DISPATCHER = "dispatcher"  # 值班长: dispatches, approves extensions, closes
    HANDLER = "handler"  # 处置人员 of one department: sees and acts on that department's cases only
    INSPECTOR = "inspector"  # 监督员: reports problems on patrol and checks handling on site
    LEADER = "leader"  # 领导: reads everything, changes nothing
    ADMIN = "admin"  # accounts, keys and anything else


class ExtensionState(StrEnum):
    """An extension (延期) request: asked by one person, decided by a person of another role."""

    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"


class SupervisionState(StrEnum):
    """A 挂牌督办 item: open (shown, followed) until a check closes it (销号)."""

    OPEN = "open"
    CLOSED = "closed"
