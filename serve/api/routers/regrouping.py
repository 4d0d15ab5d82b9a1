"""Evidence management on a case: detach a photo, split a case, merge two cases (serve/cases/
regrouping.py), by the roles that verify and file cases; each change needs the case's ETag."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from serve.api.deps import CaseId, DbSession, EvidenceId, IfMatch, Now, ServiceDep, Writer
from serve.api.routers.cases import ETAG, STALE_RESPONSES, check_if_match, detail, etag, load_case
from serve.api.schemas import CaseDetail, DetachIn, MergeIn, SplitIn
from serve.cases.auth import Principal
from serve.cases.orm import Case
from serve.cases.people import check_regroup, withdraw_extensions
from serve.cases.regrouping import Step, detach, merge, split

router = APIRouter(tags=["evidence management"])
REFUSALS = {
    **STALE_RESPONSES,
    409: {"description": "the case is finished, or would be left without evidence"},
    422: {"description": "evidence not of this case, or cases of different events"},
}


def case_to_regroup(case_id: CaseId, principal: Writer, session: DbSession, if_match: IfMatch = None) -> Case:
    """The case named in the path, once the caller's role may regroup evidence and If-Match fits."""
    check_regroup(principal)
    case = load_case(session, case_id, principal)
    check_if_match(if_match, case)
    return case


RegroupedCase = Annotated[Case, Depends(case_to_regroup)]


def step_of(principal: Principal, reason: str, now: datetime) -> Step:
    return Step(operator=principal.name, user_id=principal.user_id, at=now, reason=reason)


@router.post(
    "/v1/cases/{case_id}/evidence/{evidence_id}/detach",
    response_model=CaseDetail,
    summary="Take a photo off the case with a reason (flow log `detach`; the photo and its file are kept)",
    responses={**REFUSALS, 200: {"headers": ETAG}},
)
def detach_evidence(
    case: RegroupedCase,
    evidence_id: EvidenceId,
    principal: Writer,
    body: DetachIn,
    session: DbSession,
    service: ServiceDep,
    response: Response,
    now: Now,
) -> CaseDetail:
    detach(session, case, evidence_id, step_of(principal, body.reason, now), service.domain)
    session.commit()
    response.headers["ETag"] = etag(case)
    return detail(case, now, service.domain, principal, session)


@router.post(
    "/v1/cases/{case_id}/split",
    response_model=CaseDetail,
    status_code=status.HTTP_201_CREATED,
    summary="Move the named photos to a new case of the same event (flow log `split` in both); "
    "answers the new case",
    responses={
        **REFUSALS,
        201: {"headers": {**ETAG, "Location": {"description": "the new case", "schema": {"type": "string"}}}},
    },
)
def split_case(
    case: RegroupedCase,
    principal: Writer,
    body: SplitIn,
    session: DbSession,
    service: ServiceDep,
    response: Response,
    now: Now,
) -> CaseDetail:
    new = split(session, case, body.evidence_ids, step_of(principal, body.reason, now), service.domain)
    session.commit()
    response.headers["ETag"] = etag(new)
    response.headers["Location"] = f"/v1/cases/{new.id}"
    return detail(new, now, service.domain, principal, session)


@router.post(
    "/v1/cases/{case_id}/merge",
    response_model=CaseDetail,
    summary="Move every photo of another case of the same event here and cancel it as merged "
    "(flow log `merge` here, `cancel` there)",
    responses={**REFUSALS, 200: {"headers": ETAG}},
)
def merge_cases(
    case: RegroupedCase,
    principal: Writer,
    body: MergeIn,
    session: DbSession,
    service: ServiceDep,
    response: Response,
    now: Now,
) -> CaseDetail:
    other = load_case(session, body.case_id, principal)
    merge(case, other, step_of(principal, body.reason, now), service.domain)
    withdraw_extensions(session, other, other.flow[-1])  # `other` is cancelled as merged
    session.commit()
    response.headers["ETag"] = etag(case)
    return detail(case, now, service.domain, principal, session)
