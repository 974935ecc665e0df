"""MPR transcoder: FFmpeg workers sharing one durable JetStream pull consumer."""
