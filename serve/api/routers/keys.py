"""API keys: create (shown once), list, change their rate and revoke. Scope admin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status
from sqlalchemy import select

from serve.api.deps import Admin, DbSession, Now, ServiceDep
from serve.api.schemas import KeyChange, KeyIn, KeyOut, NewKeyOut
from serve.cases.auth import create_key, revoke_key, set_key_rate
from serve.cases.orm import ApiKey

router = APIRouter(prefix="/v1/keys", tags=["keys"])
KeyId = Annotated[str, Path(description="public id of the key (the part after so_)")]


@router.post("", response_model=NewKeyOut, status_code=status.HTTP_201_CREATED, summary="Create a key")
def create_api_key(
    _: Admin,
    body: KeyIn,
    session: DbSession,
    service: ServiceDep,
    now: Now,
) -> NewKeyOut:
    plaintext, row = create_key(
        session,
        name=body.name,
        scopes=list(body.scopes),
        pepper=service.verifier.pepper,
        now=now,
        rate_per_min=body.rate_per_min,
    )
    session.commit()
    return NewKeyOut.model_validate({**KeyOut.model_validate(row).model_dump(), "key": plaintext})


@router.get("", response_model=list[KeyOut], summary="List keys (never their secrets)")
def list_keys(
    _: Admin,
    session: DbSession,
) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


@router.patch("/{key_id}", response_model=KeyOut, summary="Change a key's rate")
def change_api_key(
    key_id: KeyId,
    body: KeyChange,
    _: Admin,
    session: DbSession,
) -> ApiKey:
    row = set_key_rate(session, key_id, body.rate_per_min)
    session.commit()  # the verifier reads the rate on every use: it holds from the key's next request
    return row


@router.delete("/{key_id}", response_model=KeyOut, summary="Revoke a key at once")
def revoke_api_key(
    key_id: KeyId,
    _: Admin,
    session: DbSession,
    now: Now,
) -> ApiKey:
    row = revoke_key(session, key_id, now)
    session.commit()  # the verifier reads the row on every use: refused from the next request on
    return row
