"""Every limit the API puts on one request, defined once here and used by REST, GraphQL and the tests.

Together they keep any single request cheap: a body is refused by its size before it is read, a JSON
body nested too deeply or not UTF-8 is a 400, a GraphQL document is refused by its size before it is
parsed, by its token count while it is parsed and by its depth, aliases and list sizes before it runs,
and nothing the API accepts can make an event larger than NATS allows."""

from __future__ import annotations

# --- HTTP -------------------------------------------------------------------------------------
# nats-server's default max_payload: no event the API publishes may be larger.
NATS_MAX_PAYLOAD = 1024 * 1024
# Any request body (Litestar's request_max_body_size): 413 beyond, from Content-Length alone when
# it is given. A re-encoded JSON string is never longer than in the body (msgspec escapes only what
# JSON requires), so an event built from an accepted body stays well under NATS_MAX_PAYLOAD.
MAX_BODY_BYTES = 512 * 1024

# --- lists ------------------------------------------------------------------------------------
MAX_PAGE = 1000  # items per list call: REST ?limit= and GraphQL jobs/assets(limit:)
MAX_OFFSET = 1_000_000_000

# --- fields of request bodies and arguments --------------------------------------------------------
MAX_KEY_CHARS = 1024  # an S3 key (validate_key also bounds its UTF-8 bytes to 1024)
MAX_ID_CHARS = 64  # a job id, asset id or scan id
MAX_PRESET_CHARS = 64
MAX_BUCKET_CHARS = 63  # S3's limit for a bucket name
MAX_WORKER_CHARS = 128
MAX_ERROR_CHARS = 4000
MAX_OUTPUT_KEYS = 10_000  # keys one callback may report (an HLS job's playlist and segments)

# --- GraphQL ----------------------------------------------------------------------------------
GRAPHQL_MAX_QUERY_BYTES = 16 * 1024  # the document, checked before parsing: 413 beyond
GRAPHQL_MAX_TOKENS = 500  # parsing stops there (GraphiQL's introspection query has about 200)
GRAPHQL_MAX_DEPTH = 6  # the schema's deepest selection is assets { info { width } }
GRAPHQL_MAX_ALIASES = 20
# The limits of all list fields one operation selects, added up (jobs/assets default to 100 each):
# one GraphQL request never asks the catalog for more than one REST page does.
GRAPHQL_MAX_ITEMS = MAX_PAGE

# --- authentication ---------------------------------------------------------------------------
# Clients whose failed authentications are remembered (auth.AuthThrottle): about 100 bytes each.
AUTH_THROTTLE_MAX_CLIENTS = 10_000
