#!/bin/sh
# parity_crps.sh BUILD - dfs_forecast_score against CSDI's recipe in PyTorch: BUILD/tests/parity/
# crps_dump scores fixed random forecasts (masks, NaN truths, ties, 1 and 2 samples),
# tests/parity/torch_crps.py recomputes the scores with torch.quantile in double and compares.
NAME=parity_crps; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"
parity tests/parity/torch_crps.py "$BUILD/tests/parity/crps_dump"
