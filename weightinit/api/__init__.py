"""What the server and the clients share: proto <-> spec conversion (:mod:`.convert`), the chunk wire
format and its digest (:mod:`.wire`), error details (:mod:`.errors`), response headers (:mod:`.describe`)
and the allocator tuning both sides' streams want (:mod:`.memory`).

Depends on the engine and the generated stubs only, never on the server or a client.
"""
