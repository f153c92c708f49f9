"""The held-out RCA scenario generator behind `gen_scenarios.py`; see `../README.md`."""
