"""The Geo API paths every site answers itself, whatever its role (DESIGN §10).

A secondary's edge relays `/api/v4/*` to the primary, but promotion is coordinated between
the sites themselves, often while the primary is gone: these paths always reach the site's
own internal API, and that API takes them on a secondary too.
"""

from __future__ import annotations

import re

SITE_LOCAL_GEO = re.compile(
    r"\A/api/v4/geo/(?:site_state|site_health|follow|maintenance|sites/[0-9]+/(?:promote|promotion))\Z"
)
