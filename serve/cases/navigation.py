"""Links that open a case's place in the navigation apps handlers carry: AMap, Baidu and the phone's own.

A handler on the street who copies the case's WGS-84 numbers into AMap (GCJ-02) or Baidu (BD-09)
walks 300-700 m to the wrong place. Each link here gives the app the position in its own system,
converted here (serve/cases/coords.py), and names that system explicitly: an app's own system is
read alike by its web page and by the app a phone hands the link to, where asking the app to
convert (AMap's coordinate=wgs84, Baidu's coord_type=wgs84) relies on every client honouring it.
The `geo:` link (RFC 5870) is WGS-84, as that scheme defines.

The case's words go into query values percent-encoded whole (quotes, <, &, # and all), so no
text of a case can end its parameter, add another or cut the link short.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from serve.cases.coords import from_wgs84

AMAP_MARKER = "https://uri.amap.com/marker"  # lbs.amap.com URI API, 单点标注
BAIDU_MARKER = "https://api.map.baidu.com/marker"  # lbsyun.baidu.com URI API (web), 地图标点
SOURCE = "webapp.streetorder.cases"  # Baidu's `src` rule: webapp.companyName.appName
TEXT_MAX = 120  # characters of the case's words in a link: the marker's label, not the case file
DIGITS = 6  # decimal places of a degree: about 0.1 m


def navigation_links(lat: float, lon: float, title: str, content: str) -> dict[str, str]:
    """The marker links for a WGS-84 (lat, lon): `amap`, `baidu` and `geo`, each labelled with
    `title` (and Baidu's pop-up with `content`)."""
    amap_lon, amap_lat = (float(v) for v in from_wgs84(lon, lat, "gcj02"))
    baidu_lon, baidu_lat = (float(v) for v in from_wgs84(lon, lat, "bd09"))
    amap = {
        "position": f"{amap_lon:.{DIGITS}f},{amap_lat:.{DIGITS}f}",  # lon,lat
        "name": _short(title),
        "src": SOURCE,
        "coordinate": "gaode",  # GCJ-02
        "callnative": "1",  # a phone opens the AMap app where it has it
    }
    baidu = {
        "location": f"{baidu_lat:.{DIGITS}f},{baidu_lon:.{DIGITS}f}",  # lat,lon
        "coord_type": "bd09ll",
        "title": _short(title),
        "content": _short(content) or _short(title),  # Baidu requires both
        "output": "html",
        "src": SOURCE,
    }
    return {
        "amap": f"{AMAP_MARKER}?{_query(amap)}",
        "baidu": f"{BAIDU_MARKER}?{_query(baidu)}",
        "geo": f"geo:{lat:.{DIGITS}f},{lon:.{DIGITS}f}",
    }


def _short(text: str) -> str:
    text = " ".join(text.split())  # a label on one line
    return text if len(text) <= TEXT_MAX else text[: TEXT_MAX - 1] + "…"


def _query(values: dict[str, str]) -> str:
    return urlencode(values, quote_via=quote, safe=",")  # every reserved character but the comma
