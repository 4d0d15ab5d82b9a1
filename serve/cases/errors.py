"""Domain errors: what rules and services raise when a client asks for something that cannot be.

Plain exceptions, no HTTP below the routers: each names its meaning (`status`, `title`) and what a
client needs to put it right (`extra`); serve/api/problems.py is the one place they become HTTP
responses.
"""

from __future__ import annotations

from typing import Any

from serve.cases.coords import CoordSystem, from_wgs84
from vision.data.annotations.records import shown


def as_sent(text: str) -> str:
    """Text a client sent, as a problem document names it: itself where every character shows as
    itself, else escaped (`shown`): a DEL or an ESC echoed raw would reach the terminal or log
    that reads the answer, a newline would forge lines there."""
    return text if text.isprintable() else shown(text)


class DomainError(Exception):
    """Base of every error a client can cause; `status` is its HTTP meaning, `extra` goes to the body."""

    status = 400
    title = "bad request"
    headers: dict[str, str] | None = None

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(DomainError):
    status, title = 404, "not found"

    def __init__(self, kind: str, key: object, known: str = "") -> None:
        super().__init__(f"{kind} {key} does not exist{known}")


class InvalidTransition(DomainError):
    status, title = 409, "invalid transition"

    def __init__(self, state: str, action: str, allowed: list[str], detail: str | None = None) -> None:
        super().__init__(
            detail or f"action '{action}' is not allowed in state '{state}'",
            state=state,
            action=action,
            allowed_actions=allowed,
        )


class MissingField(DomainError):
    status, title = 422, "missing field"

    def __init__(self, action: str, fields: list[str]) -> None:
        super().__init__(f"action '{action}' needs: {', '.join(fields)}", fields=fields)


class InvalidInput(DomainError):
    """A well-formed request naming something that does not fit (unknown event, foreign evidence ...)."""

    status, title = 422, "invalid input"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}", field=field)


class InvalidFile(DomainError):
    """A file the service was asked to apply (its cameras file, on reload) that cannot be used. The
    file's own error names the file, the field and why, and is the whole detail: as InvalidInput's
    field it named the file twice (`cameras.yaml: /srv/configs/cameras.yaml: cameras[0]...`)."""

    status, title = 422, "invalid file"


class OutsideJurisdiction(DomainError):
    """A position no unit grid of the layout holds: no street, community or department answers for it.

    Raised on the WGS-84 position kept inside; the door whose client sent it names that client's
    fields, numbers and coordinate system (`sent_as`), so the answer echoes what was sent."""

    status, title = 422, "outside the jurisdiction"

    def __init__(self, lat: float, lon: float, bounds: tuple[float, float, float, float]) -> None:
        self.lat, self.lon, self.bounds = lat, lon, bounds
        super().__init__("")
        self.sent_as(("lat", "lon"), lat, lon, "wgs84")

    def sent_as(self, names: tuple[str, str], lat: float, lon: float, system: CoordSystem) -> None:
        """Say the refusal in the client's terms: its field `names`, its (`lat`, `lon`) in its
        `system`, and the grids' extent converted to that system; the WGS-84 position stays as
        `wgs84` where the system is another."""
        lon_min, lat_min, lon_max, lat_max = self.bounds
        if system != "wgs84":
            lon_min, lat_min, lon_max, lat_max = (
                float(v)
                for corner in ((lon_min, lat_min), (lon_max, lat_max))
                for v in from_wgs84(*corner, system)
            )
        in_system = f" ({system})" if system != "wgs84" else ""
        lat_name, lon_name = names
        self.detail = (
            f"{lat_name}/{lon_name}: ({lat}, {lon}){in_system} lies outside every unit grid of this bureau "
            f"(the grids cover {lat_name} {lat_min:.5f}..{lat_max:.5f}, "
            f"{lon_name} {lon_min:.5f}..{lon_max:.5f}{in_system}); no case was made"
        )
        self.args = (self.detail,)
        self.extra = {
            "field": f"{lat_name}/{lon_name}",
            lat_name: lat,
            lon_name: lon,
            "grid_bounds": [lon_min, lat_min, lon_max, lat_max],
            **({"coord_system": system, "wgs84": {"lat": self.lat, "lon": self.lon}} if in_system else {}),
        }


class PhotoReused(DomainError):
    """A photo already evidence of another case, sent as evidence of this one."""

    status, title = 409, "photo already evidence of another case"

    def __init__(self, case_number: str, evidence_id: int, case_id: int) -> None:
        super().__init__(
            f"this photo (the same bytes or a near-identical image) is already evidence {evidence_id} "
            f"of case {case_number}: take a new photo, or add it to that case",
            case=case_number,
            case_id=case_id,
            evidence_id=evidence_id,
        )


class AfterPhotoFailed(DomainError):
    """`handle` or `check_pass` on an after-photo whose check failed, without a person's override."""

    status, title = 409, "after-photo check failed"

    def __init__(self, action: str, evidence_id: int | None, failed: list[str]) -> None:
        what = f"after-photo {evidence_id}" if evidence_id is not None else "the case's after-photo"
        super().__init__(
            f"{what} failed its check ({', '.join(failed)}): '{action}' needs a new after-photo, "
            "or a person's reason in override_reason",
            action=action,
            evidence_id=evidence_id,
            failed=failed,
        )


class LastEvidence(DomainError):
    """A detach or split that would leave a case without any photo of its problem."""

    status, title = 409, "a case keeps its evidence"

    def __init__(self, case_number: str, evidence_ids: list[int]) -> None:
        super().__init__(
            f"case {case_number} would have no evidence left without {', '.join(map(str, evidence_ids))}: "
            "keep at least one photo (cancel or reject the case instead)",
            case=case_number,
            evidence_ids=evidence_ids,
        )


class CaseNotOpen(DomainError):
    """Evidence of a finished case (closed, force-closed, cancelled, not filed) is its record: it is
    neither regrouped nor added to."""

    status, title = 409, "case not open"

    def __init__(self, case_number: str, state: str) -> None:
        super().__init__(
            f"case {case_number} is {state}: its evidence is no longer changed",
            case=case_number,
            state=state,
        )


class StaleVersion(DomainError):
    status, title = 412, "precondition failed"

    def __init__(self, expected: str, current: int | None) -> None:
        tag = None if current is None else f'"{current}"'
        # `If-Match: 4` read "If-Match 4 does not match the case's current version 4": an entity tag
        # is quoted, so a bare number matches none, and the answer must say why
        bare = tag is not None and expected.strip() == str(current)
        why = f"an ETag is quoted: send If-Match: {tag}" if bare else "reload and retry"
        super().__init__(
            f"If-Match {as_sent(expected)} does not match the case's current ETag {tag}; {why}",
            current_etag=tag,
        )


class PreconditionRequired(DomainError):
    status, title = 428, "precondition required"

    def __init__(self) -> None:
        super().__init__("changes to a case need an If-Match header with the ETag from GET /v1/cases/{id}")


class Unauthorized(DomainError):
    status, title = 401, "unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="streetorder"'}


class Forbidden(DomainError):
    status, title = 403, "forbidden"

    def __init__(self, scope: str, holder: str = "this API key") -> None:
        super().__init__(f"{holder} lacks the scope '{scope}'", required_scope=scope)


class NotPermitted(DomainError):
    """A person's role (or department) does not allow this, whatever the scopes say."""

    status, title = 403, "forbidden"

    def __init__(self, role: str, detail: str) -> None:
        super().__init__(f"role '{role}' {detail}", role=role)


class CsrfFailed(DomainError):
    status, title = 403, "forbidden"

    def __init__(self) -> None:
        super().__init__("a change made with a session cookie needs the session's X-CSRF-Token header")


class Conflict(DomainError):
    status, title = 409, "conflict"


class TooManyAttempts(DomainError):
    status, title = 429, "too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after)}


class UnsupportedMedia(DomainError):
    status, title = 415, "unsupported media type"


class TooLarge(DomainError):
    status, title = 413, "payload too large"


class IdempotencyMismatch(DomainError):
    status, title = 422, "idempotency key reused"

    def __init__(self, key: str) -> None:
        super().__init__(f"Idempotency-Key '{key}' was already used for a different request")


class Unavailable(DomainError):
    """A part the request needs is not installed (e.g. the privacy filter): withheld, not degraded."""

    status, title = 503, "unavailable"


class Busy(DomainError):
    status, title = 503, "busy"
    headers = {"Retry-After": "1"}


class DatabaseReadOnly(DomainError):
    """The database refused a write because it cannot write at all (its file, folder or mount made
    read-only): nothing was changed, and reads go on; the write succeeds once an operator has made it
    writable again."""

    status, title = 503, "database cannot be written"
    headers = {"Retry-After": "60"}


class EventsKept(Busy):
    """A camera frame was judged, but the database did not take its events (busy past the frame's
    budget, unreachable, read-only): they wait with the camera and are written first with its next
    frame, so nothing is lost; the frame sent again is late (judged already), and its answer lists
    what the waiting events did."""

    headers = {"Retry-After": "5"}
