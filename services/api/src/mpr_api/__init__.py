"""MPR API: Litestar REST + GraphQL. Stateless: reads state from the catalog over NATS."""
