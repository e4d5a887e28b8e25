"""Browser views of the sampling app (configuration pages, dashboards)."""
