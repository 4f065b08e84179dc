"""FAB settings for the production layout (docker-compose.yaml, `make e2e`): ``[fab] config_file``.

Settings only: users and roles live in the metadata database, and the roles are Nightshift's because
the auth manager (``nightshift.auth.NightshiftAuthManager``) brings its security manager. This file
imports nothing from plugins/ (tests/test_layers.py).
For single sign-on, see docs/access-control.md, "Single sign-on": set AUTH_TYPE = AUTH_OAUTH and OAUTH_PROVIDERS.
"""

from __future__ import annotations

import os

from flask_appbuilder.const import AUTH_DB

AUTH_TYPE = AUTH_DB
AUTH_ROLE_ADMIN = "Admin"
AUTH_ROLE_PUBLIC = "Public"  # no permissions: an anonymous visitor sees the login page only
WTF_CSRF_ENABLED = True
WTF_CSRF_TIME_LIMIT = None
# Self-registration stays off: an Admin creates users (docs/access-control.md: "How to add a labeller").
AUTH_USER_REGISTRATION = False
SESSION_COOKIE_SECURE = os.environ.get("NIGHTSHIFT_COOKIE_SECURE", "false").lower() == "true"
SESSION_COOKIE_SAMESITE = "Lax"
