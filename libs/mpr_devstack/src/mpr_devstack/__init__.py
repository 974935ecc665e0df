"""Embedded MPR: real nats-server (JetStream), moto's S3 server and the four services on loopback."""
