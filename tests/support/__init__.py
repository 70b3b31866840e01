"""Test helpers shared by the suites: processes, ports, mini-projects, store inspection."""
