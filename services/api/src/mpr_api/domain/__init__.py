"""What the API does, by domain, for REST and GraphQL alike; route handlers stay thin and call these."""
