"""Loading and validating engine settings and channel YAML, with every finding at file:line:col."""
