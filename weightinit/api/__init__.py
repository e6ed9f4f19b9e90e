"""What the server and the clients share: proto <-> spec conversion (:mod:`.convert`), the chunk wire
format and its digest (:mod:`.wire`), error details (:mod:`.errors`) and response headers (:mod:`.describe`).

Depends on the engine and the generated stubs only, never on the server or a client.
"""
