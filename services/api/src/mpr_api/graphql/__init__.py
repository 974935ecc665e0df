"""GraphQL assembly: the transport at /graphql, its limits, the error mapping and helpers every domain's
resolvers use, and the schema built from the features' fields. It imports no domain."""
