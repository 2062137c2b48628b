"""Plans, usage metering, quotas and creation limits."""
