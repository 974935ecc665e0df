"""MPR scanner: turns bucket listings and MinIO notifications into object events. Stateless."""
