"""Who may do what: users, roles and permissions, API tokens, sessions, second factors, login throttling.

    roles.py       the four roles and the permission each /api/v1 route and console page declares
    passwords.py   argon2id password hashes
    users.py       local users: create, change, list, authenticate (with throttling)
    tokens.py      API tokens for machines: role + scope + expiry, stored as a hash, shown once
    sessions.py    console sessions (cookie value stored as a hash) with their CSRF token
    totp.py        TOTP second factor (pyotp)
    webauthn.py    WebAuthn second factor (the webauthn package)
    principal.py   the authenticated caller a route receives

Above the operations layer (it records audit events through simpul.dead_letters.audit), below the
HTTP API and the CLI, which both use it: a token made by `simpul tokens create` is the same row the
console's tokens page makes.
"""
