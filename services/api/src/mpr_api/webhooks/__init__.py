"""Webhooks: subscriptions to job and asset events, delivered as signed CloudEvents (docs/webhooks.md).

- ``model``: what is stored (subscriptions, deliveries) and which events a subscription wants.
- ``cloudevents``: a job or asset event as an occurrence, and the CloudEvent sent for it.
- ``signing``: the Standard Webhooks signature, and how a receiver verifies it.
- ``ssrf``: which addresses a webhook may reach; the connection backend that enforces it.
- ``backoff``: which answers are retried, and when.
- ``store`` / ``deliveries``: subscriptions in their KV bucket; the delivery log stream.
- ``sender`` / ``engine``: one HTTP attempt; fan-out of events to delivery tasks, and their delivery.
- ``service``: what the REST routes and GraphQL fields call.
"""
