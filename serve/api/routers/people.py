"""People: signing in and out of the console (session cookie + CSRF token), and accounts (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status
from sqlalchemy import select

from serve.api.deps import SESSION_COOKIE, Admin, Anyone, DbSession, Now, ServiceDep, client_of
from serve.api.schemas import SessionOut, SignInIn, UserIn, UserOut
from serve.cases.auth import Principal
from serve.cases.enums import Action, Role
from serve.cases.errors import TooManyAttempts, Unauthorized
from serve.cases.orm import User
from serve.cases.people import (
    ROLE_ACTIONS,
    create_user,
    csrf_token,
    disable_user,
    principal_of_user,
    sign_in,
    sign_out,
)

router = APIRouter(tags=["people"])
Username = Annotated[str, Path(max_length=64, description="account name")]


def session_out(principal: Principal, username: str | None, csrf: str | None) -> SessionOut:
    actions = list(Action) if principal.role is None else sorted(ROLE_ACTIONS[Role(principal.role)])
    return SessionOut(
        name=principal.name,
        username=username,
        role=Role(principal.role) if principal.role else None,
        department=principal.department,
        scopes=sorted(principal.scopes),
        actions=[str(a) for a in actions],
        csrf_token=csrf,
    )


@router.post(
    "/v1/sessions",
    response_model=SessionOut,
    summary="Sign in with a password: sets the HttpOnly session cookie, returns the CSRF token (no key)",
    responses={
        401: {"description": "wrong name or password, or disabled"},
        429: {"description": "too many tries"},
    },
)
def create_session(
    body: SignInIn, request: Request, response: Response, session: DbSession, service: ServiceDep, now: Now
) -> SessionOut:
    throttle, client = service.sign_ins, client_of(request)
    if wait := throttle.wait_s(body.username, client):
        raise TooManyAttempts(f"too many failed sign-ins for '{body.username}'; try again in {wait} s", wait)
    pepper = service.verifier.pepper
    try:
        token, user = sign_in(
            session, body.username, body.password, pepper, now, service.settings.session_hours
        )
    except Unauthorized:
        throttle.failed(body.username, client)
        service.client_failures.failed(client)  # one password on many names: per address
        raise
    session.commit()
    throttle.succeeded(body.username, client)
    request.state.principal = principal_of_user(user)  # the audit log names who signed in
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(service.settings.session_hours * 3600),
        path="/",
        httponly=True,
        samesite="strict",
        secure=service.settings.cookie_secure or request.url.scheme == "https",
    )
    return session_out(request.state.principal, user.username, csrf_token(token, pepper))


@router.get("/v1/sessions/current", response_model=SessionOut, summary="Who is calling, and what they may do")
def current_session(
    principal: Anyone, request: Request, session: DbSession, service: ServiceDep
) -> SessionOut:
    token = request.cookies.get(SESSION_COOKIE) if principal.user_id is not None else None
    user = session.get(User, principal.user_id) if principal.user_id is not None else None
    return session_out(
        principal,
        user.username if user else None,
        csrf_token(token, service.verifier.pepper) if token else None,
    )


@router.delete(
    "/v1/sessions/current",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Sign out: the session ends at once, the cookie is cleared",
)
def end_session(_: Anyone, request: Request, session: DbSession, now: Now) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        sign_out(session, token, now)
        session.commit()
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.post(
    "/v1/users", response_model=UserOut, status_code=status.HTTP_201_CREATED, summary="Create an account"
)
def add_user(_: Admin, body: UserIn, session: DbSession, service: ServiceDep, now: Now) -> User:
    user = create_user(
        session,
        username=body.username,
        password=body.password,
        role=body.role,
        pepper=service.verifier.pepper,
        now=now,
        display_name=body.display_name,
        department=body.department,
        grids=body.grids,
        departments=tuple(service.domain.routing.departments),
        layout=service.domain.rules.grids,
    )
    session.commit()
    return user


@router.get("/v1/users", response_model=list[UserOut], summary="Accounts (never their password hashes)")
def list_users(_: Admin, session: DbSession) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


@router.delete(
    "/v1/users/{username}",
    response_model=UserOut,
    summary="Disable an account: its sessions end at once; kept, since flow logs name the person",
)
def disable_account(username: Username, _: Admin, session: DbSession, now: Now) -> User:
    user = disable_user(session, username, now)
    session.commit()
    return user
