"""What ``make demo`` needs beyond the toolkit's commands: a second person to review."""
