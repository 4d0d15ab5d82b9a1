"""A GeoReport v2 client written from the specification alone (http://wiki.open311.org/GeoReport_v2
and its Service Discovery page), not from this service: it knows the specification's URLs,
parameters, fields and XML elements, and nothing else. It finds the endpoint through the discovery
document, reads in XML (the required format) or JSON, sends an api_key only with a POST (as a form
field), and turns GeoReport's error lists into `GeoReportError`.

Values come back as the specification types them (lat/long numbers, booleans), so an answer reads
the same in both formats.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import httpx

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
MEDIA_TYPES = {"xml": "text/xml", "json": "application/json"}
# the specification's XML: each list element and the element of its items
LIST_ITEMS = {
    "services": "service",
    "service_requests": "request",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
    "errors": "error",
}
NUMBERS = {"lat", "long", "order"}
BOOLEANS = {"metadata", "variable", "required"}


class GeoReportError(Exception):
    """An answer with GeoReport's error list: the HTTP status and each (code, description)."""

    def __init__(self, status: int, errors: list[tuple[int, str]]) -> None:
        super().__init__(f"{status}: {errors}")
        self.status = status
        self.errors = errors

    @property
    def description(self) -> str:
        return "; ".join(description for _, description in self.errors)


def parse_xml(data: bytes) -> Any:
    """A GeoReport XML document as plain values: lists for the list elements, dicts otherwise."""
    return _value(ET.fromstring(data))


def _value(element: ET.Element) -> Any:
    if element.tag in LIST_ITEMS:
        return [_value(child) for child in element if child.tag == LIST_ITEMS[element.tag]]
    if len(element):
        return {child.tag: _value(child) for child in element}
    return element.text


def typed(value: Any, name: str = "") -> Any:
    """Specification types for text from XML (JSON already has them)."""
    if isinstance(value, list):
        return [typed(item, name) for item in value]
    if isinstance(value, dict):
        return {key: typed(item, key) for key, item in value.items()}
    if isinstance(value, str) and name in NUMBERS:
        return float(value) if name in ("lat", "long") else int(value)
    if isinstance(value, str) and name in BOOLEANS:
        return value == "true"
    return value


@dataclass
class GeoReport:
    http: httpx.Client
    endpoint: str  # the base URL of the methods, from the discovery document
    fmt: str = "xml"
    api_key: str | None = None

    @classmethod
    def discover(cls, http: httpx.Client, discovery_url: str, api_key: str | None = None) -> GeoReport:
        """The production GeoReport v2 endpoint of a discovery document, in XML if it offers it."""
        document = read(http.get(discovery_url), discovery_url.rsplit(".", 1)[1])
        endpoint = next(
            e
            for e in document["endpoints"]
            if e["specification"] == SPECIFICATION and e["type"] == "production"
        )
        fmt = "xml" if MEDIA_TYPES["xml"] in endpoint["formats"] else "json"
        return cls(http, endpoint["url"].rstrip("/"), fmt, api_key)

    def _get(self, resource: str, params: dict[str, str] | None = None) -> Any:
        return read(self.http.get(f"{self.endpoint}/{resource}.{self.fmt}", params=params), self.fmt)

    def services(self) -> list[dict[str, Any]]:
        return list(self._get("services"))

    def definition(self, service_code: str) -> dict[str, Any]:
        return dict(self._get(f"services/{service_code}"))

    def create(self, **fields: Any) -> dict[str, Any]:
        """POST a request; answers its service_request_id, or a token (and the service_notice)."""
        form = {key: str(value) for key, value in fields.items() if value is not None}
        if self.api_key is not None:
            form["api_key"] = self.api_key
        [created] = read(self.http.post(f"{self.endpoint}/requests.{self.fmt}", data=form), self.fmt)
        return dict(created)

    def requests(self, **params: str) -> list[dict[str, Any]]:
        return list(self._get("requests", params))

    def request(self, service_request_id: str) -> dict[str, Any]:
        [found] = self._get(f"requests/{service_request_id}")
        return dict(found)

    def token(self, token: str) -> dict[str, Any]:
        [found] = self._get(f"tokens/{token}")
        return dict(found)


def read(response: httpx.Response, fmt: str) -> Any:
    """The body in the format asked for; GeoReport's error list raised as GeoReportError."""
    assert response.headers["content-type"].startswith(MEDIA_TYPES[fmt]), response.headers["content-type"]
    if fmt == "xml":
        assert response.content.startswith(b"<?xml"), "the specification asks for the XML declaration"
    body = parse_xml(response.content) if fmt == "xml" else response.json()
    if response.status_code >= 400:
        raise GeoReportError(response.status_code, [(int(e["code"]), e["description"]) for e in body])
    return typed(body)
