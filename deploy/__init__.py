"""Deployment files and the generator that keeps their per-agent parts in step with the line-up."""
