"""People: accounts with a role, console sessions, what each role may do, and extension requests.

API keys (serve/cases/auth.py) stay for machines; people sign in with a password and get a
`Principal` whose scopes follow from their role. Beyond scopes, a role limits the workflow actions a
person may take (`ROLE_ACTIONS`) and a department handler sees only their department's cases.
Inspectors (监督员) verify reports on site (核实: confirm, correct, reject) as operators do at the
desk, except a report of their own: its verification is another person's look, and their valid
report rate counts it.

Passwords are kept as scrypt(password, salt + server secret) with the parameters in the stored
string, so they can be raised later without locking anyone out. A session cookie holds a random
token; the table keeps only its sha256, and the CSRF token is an HMAC of the session token under the
server secret (nothing more to store, and useless without the cookie).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from serve.cases.auth import Principal, check_name
from serve.cases.enums import Action, ExtensionState, Role
from serve.cases.errors import Conflict, InvalidInput, NotFound, NotPermitted, Unauthorized
from serve.cases.grids import GridIndex
from serve.cases.orm import Case, ExtensionRequest, FlowEntry, User, UserSession
from serve.cases.workflow import TERMINAL_STATES, TRANSITIONS

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD_LENGTH = 10
SESSION_HOURS = 12.0
USER_ID_PREFIX = "user-"  # principals of people: "user-<id>", never a 12-hex key id

# Scopes a role carries on the API: the same routes as API keys, nothing new to guard.
ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.OPERATOR: frozenset({"cases:read", "cases:write", "report"}),
    Role.DISPATCHER: frozenset({"cases:read", "cases:write"}),
    Role.HANDLER: frozenset({"cases:read", "cases:write"}),
    Role.INSPECTOR: frozenset({"cases:read", "cases:write", "report"}),
    Role.LEADER: frozenset({"cases:read"}),
    Role.ADMIN: frozenset({"admin"}),
}
A = Action
# Workflow actions a role may take (`extend` only through an approved request: see below).
ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.OPERATOR: frozenset({A.CONFIRM, A.CORRECT, A.REJECT, A.FILE, A.CANCEL}),
    Role.DISPATCHER: frozenset({A.DISPATCH, A.SUSPEND, A.RESUME, A.CLOSE, A.CANCEL, A.FORCE_CLOSE}),
    Role.HANDLER: frozenset({A.START, A.HANDLE, A.SEND_BACK}),
    Role.INSPECTOR: frozenset({A.CONFIRM, A.CORRECT, A.REJECT, A.CHECK_PASS, A.CHECK_FAIL}),
    Role.LEADER: frozenset(),
    Role.ADMIN: frozenset(Action) - {A.EXTEND},
}
# Who may ask for more time, and who may grant it (never the role, nor the person, that asked).
EXTENSION_REQUESTERS = frozenset({Role.HANDLER, Role.DISPATCHER})
EXTENSION_APPROVERS = frozenset({Role.DISPATCHER, Role.ADMIN})
DEPARTMENT_ROLES = frozenset({Role.HANDLER})  # roles that belong to one department
VERIFYING = frozenset({A.CONFIRM, A.CORRECT, A.REJECT})  # 核实: the report is true, of another class, false
# Who may detach, split and merge a case's evidence, and place a held citizen request (which files
# it as a case): the roles that file cases (立案).
FILING_ROLES = frozenset(role for role, actions in ROLE_ACTIONS.items() if A.FILE in actions)


# --- passwords ---------------------------------------------------------------------------------


def hash_password(password: str, pepper: bytes) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput("password", f"at least {MIN_PASSWORD_LENGTH} characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt + pepper, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str, pepper: bytes) -> bool:
    """Constant-time check against a stored `scrypt$n$r$p$salt$hash` string."""
    _, n, r, p, salt, expected = stored.split("$")
    digest = hashlib.scrypt(
        password.encode(), salt=bytes.fromhex(salt) + pepper, n=int(n), r=int(r), p=int(p)
    )
    return hmac.compare_digest(digest.hex(), expected)


# --- accounts ----------------------------------------------------------------------------------


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: str,
    pepper: bytes,
    now: datetime,
    display_name: str | None = None,
    department: str | None = None,
    grids: list[str] | None = None,
    departments: tuple[str, ...] = (),
    layout: GridIndex | None = None,
) -> User:
    """Add a person; a handler needs one of `departments` (the routing's), other roles none; an
    inspector's responsibility grids must be grids of `layout`."""
    try:
        kind = Role(role)
    except ValueError:
        raise InvalidInput("role", f"expected one of {', '.join(Role)}, got '{role}'") from None
    if not username or not username.isascii() or not username.replace(".", "").replace("-", "").isalnum():
        raise InvalidInput("username", "letters, digits, '.' and '-' only")
    check_name("username", username)
    if kind in DEPARTMENT_ROLES and department not in departments:
        raise InvalidInput("department", f"a {kind} needs one of: {', '.join(departments)}")
    if kind not in DEPARTMENT_ROLES and department:
        raise InvalidInput("department", f"only {', '.join(DEPARTMENT_ROLES)} belong to a department")
    if grids and kind is not Role.INSPECTOR:
        raise InvalidInput("grids", "only inspectors have responsibility grids")
    if unknown := [code for code in grids or [] if layout is None or layout.get(code) is None]:
        raise InvalidInput("grids", f"not unit grids of the layout: {', '.join(unknown)}")
    # `Boss` beside `boss` (an admin) read as the same person in every list and flow log
    same = session.scalars(select(User).where(func.lower(User.username) == username.lower())).first()
    if same is not None:
        raise Conflict(
            f"user '{same.username}' exists"
            + ("" if same.username == username else " (names differ in case only)")
        )
    user = User(
        username=username,
        display_name=check_name("display_name", display_name or username),
        role=kind,
        department=department,
        grids=sorted(set(grids or [])),
        password_hash=hash_password(password, pepper),
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    if user is None:
        raise NotFound("user", username)
    return user


def disable_user(session: Session, username: str, now: datetime) -> User:
    """Disable a person (kept: flow logs name them) and end their sessions at once. The last admin
    who can sign in is kept: without one nobody can manage people in the console any more."""
    user = find_user(session, username)
    if user.role == Role.ADMIN and user.disabled_at is None:
        others = User.role == Role.ADMIN, User.disabled_at.is_(None), User.id != user.id
        if session.scalar(select(User.id).where(*others).limit(1)) is None:
            raise Conflict(f"{username} is the last admin who can sign in: create another admin first")
    user.disabled_at = user.disabled_at or now
    for open_session in session.scalars(
        select(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
    ):
        open_session.ended_at = now
    return user


def principal_of_user(user: User) -> Principal:
    return Principal(
        key_id=f"{USER_ID_PREFIX}{user.id}",
        name=user.display_name,
        scopes=ROLE_SCOPES[user.role],
        user_id=user.id,
        role=str(user.role),
        department=user.department,
    )


# --- sessions ----------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(token: str, pepper: bytes) -> str:
    """The CSRF token of a session: sent by the console in X-CSRF-Token with every change."""
    return hmac.new(pepper, b"csrf:" + token.encode(), hashlib.sha256).hexdigest()


@cache
def _decoy(pepper: bytes) -> str:
    """A hash to check unknown names against: they take as long as known ones (no name probing)."""
    return hash_password(secrets.token_urlsafe(16), pepper)


def sign_in(
    session: Session, username: str, password: str, pepper: bytes, now: datetime, hours: float = SESSION_HOURS
) -> tuple[str, User]:
    """Check a password and open a session; the same 401 for an unknown name, a wrong password or a
    disabled account (no way to learn which names exist)."""
    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    stored = user.password_hash if user else _decoy(pepper)
    if not password_matches(password, stored, pepper) or user is None or user.disabled_at is not None:
        raise Unauthorized("wrong username or password, or the account is disabled")
    token = secrets.token_urlsafe(32)
    session.add(
        UserSession(
            token_hash=_token_hash(token),
            user_id=user.id,
            created_at=now,
            expires_at=now + timedelta(hours=hours),
        )
    )
    return token, user


def session_user(session: Session, token: str, now: datetime) -> User:
    """The person a session cookie belongs to, while the session and the account are valid."""
    row = session.scalars(
        select(UserSession).where(UserSession.token_hash == _token_hash(token))
    ).one_or_none()
    if row is None or row.ended_at is not None or row.expires_at <= now:
        raise Unauthorized("the session has ended; sign in again")
    if row.user.disabled_at is not None:
        raise Unauthorized("the account is disabled")
    return row.user


def sign_out(session: Session, token: str, now: datetime) -> None:
    row = session.scalars(
        select(UserSession).where(UserSession.token_hash == _token_hash(token))
    ).one_or_none()
    if row is not None and row.ended_at is None:
        row.ended_at = now


# --- what a person may do ----------------------------------------------------------------------


def may_act(principal: Principal, action: Action, case: Case | None = None) -> bool:
    """API keys are judged by scope alone; people also by their role's actions, and on `case`
    by whether it is their own report to verify."""
    if principal.role is None:
        return True
    allowed = action in ROLE_ACTIONS[Role(principal.role)]
    return allowed and not (case is not None and verifies_own_report(principal, action, case))


def reporter_id(flow: Sequence[Any]) -> int | None:
    """The person whose report opened a case, from its flow log in order (ORM steps or plain rows
    with `user_id`): the first step's, if a person's."""
    return flow[0].user_id if flow else None


def verifies_own_report(principal: Principal, action: Action, case: Case) -> bool:
    """An inspector verifying the report they made: their word checked by themselves."""
    return (
        principal.role == Role.INSPECTOR
        and action in VERIFYING
        and principal.user_id is not None
        and reporter_id(case.flow) == principal.user_id
    )


def check_own_report(principal: Principal, action: Action, case: Case) -> None:
    if verifies_own_report(principal, action, case):
        raise NotPermitted(
            str(principal.role),
            f"may not '{action}' a report they made themselves (an operator or another inspector "
            "verifies it)",
        )


def check_action(principal: Principal, action: Action) -> None:
    if not may_act(principal, action):
        allowed = sorted(ROLE_ACTIONS[Role(str(principal.role))])
        hint = "; ask for an extension with POST /v1/cases/{id}/extensions" if action is A.EXTEND else ""
        raise NotPermitted(
            str(principal.role), f"may not '{action}' (may: {', '.join(allowed) or 'nothing'}){hint}"
        )


def may_file(principal: Principal) -> bool:
    """API keys with cases:write may; people only in a role that files cases."""
    return principal.role is None or Role(principal.role) in FILING_ROLES


def check_place(principal: Principal) -> None:
    """A held citizen request placed becomes a case: a handler (cases:write, to handle their
    department's cases) placed one in any grid through the console."""
    if not may_file(principal):
        raise NotPermitted(
            str(principal.role),
            "may not place citizen requests (the roles that file cases may: "
            f"{', '.join(sorted(FILING_ROLES))})",
        )


def check_regroup(principal: Principal) -> None:
    if not may_file(principal):
        raise NotPermitted(
            str(principal.role),
            f"may not detach, split or merge evidence (the roles that file cases may: "
            f"{', '.join(sorted(FILING_ROLES))})",
        )


def sees(principal: Principal, case: Case) -> bool:
    """A department handler sees only their department's cases; everyone else sees all."""
    return principal.role not in DEPARTMENT_ROLES or case.department == principal.department


# --- extension requests (延期申请) ---------------------------------------------------------------


def request_extension(
    session: Session, case: Case, principal: Principal, *, extend_by: float, note: str, now: datetime
) -> ExtensionRequest:
    """Ask for more time on an open dispatched case; one pending request per case."""
    if principal.role is not None and Role(principal.role) not in EXTENSION_REQUESTERS:
        raise NotPermitted(
            principal.role, f"may not ask for extensions ({', '.join(EXTENSION_REQUESTERS)} may)"
        )
    if (case.state, A.EXTEND) not in TRANSITIONS:
        raise Conflict(
            f"case {case.id} is {case.state}: only dispatched, handling or suspended cases get more time"
        )
    pending = session.scalars(
        select(ExtensionRequest).where(
            ExtensionRequest.case_id == case.id, ExtensionRequest.state == ExtensionState.PENDING
        )
    ).first()
    if pending is not None:
        raise Conflict(f"case {case.id} already has extension request {pending.id} waiting for a decision")
    row = ExtensionRequest(
        case_id=case.id,
        extend_by=extend_by,
        note=note,
        requested_by=principal.name,
        requester_id=principal.key_id,
        requester_role=principal.role,
        requested_at=now,
        state=ExtensionState.PENDING,
    )
    session.add(row)
    session.flush()
    return row


def check_decider(request: ExtensionRequest, principal: Principal) -> None:
    """The decision belongs to another person of an approving role other than the requester's."""
    if request.state is not ExtensionState.PENDING:
        raise Conflict(f"extension request {request.id} was already {request.state}")
    if principal.key_id == request.requester_id:
        raise NotPermitted(str(principal.role or "key"), "may not decide their own extension request")
    if principal.role is not None and (
        Role(principal.role) not in EXTENSION_APPROVERS or principal.role == request.requester_role
    ):
        raise NotPermitted(
            principal.role,
            f"may not decide a {request.requester_role}'s extension request "
            f"(another role of {', '.join(EXTENSION_APPROVERS)} decides)",
        )


def withdraw_extensions(session: Session, case: Case, step: FlowEntry) -> None:
    """A pending extension request ends with the dispatch it was asked under: when the department
    sends the case back (回退) or the case is finished, it is closed as refused, the step's person
    and a note saying why. Left pending, it kept the next department from asking for its own time
    (one pending request per case), and approving it moved their deadline by what another asked."""
    if step.action != Action.SEND_BACK and step.to_state not in TERMINAL_STATES:
        return
    waiting = session.scalars(
        select(ExtensionRequest).where(
            ExtensionRequest.case_id == case.id, ExtensionRequest.state == ExtensionState.PENDING
        )
    )
    why = "sent back (回退)" if step.action == Action.SEND_BACK else str(step.to_state).replace("_", " ")
    for row in waiting:
        row.state = ExtensionState.REFUSED
        row.decided_by, row.decided_at = step.operator, step.at
        row.decision_note = f"withdrawn: the case was {why} by {step.operator}"
