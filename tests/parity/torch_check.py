"""torch_check.py - the pass/fail bookkeeping that the PyTorch comparison scripts share.

    checks = Checks("torch_x")          # quiet=True prints only the failures
    checks(err <= tol, f"output max error {err:.3g}")
    sys.exit(run(checks, main, usage))  # calls main(path) with argv[1]
    sys.exit(run(checks, main, usage, many=True))  # main(paths), argv[1:] (one or more)

run() prints "NAME: N passed, N failed" at the end (the line tests/run.sh adds up), exits 2
with the usage on wrong arguments, and counts an exception (a broken file, a missing tensor)
as one failure, after its traceback, so that the summary line is always there."""
import sys
import traceback


class Checks:
    def __init__(self, name, quiet=False):
        self.name, self.quiet = name, quiet
        self.passed = self.failed = 0

    def __call__(self, ok, msg):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        if not ok or not self.quiet:
            print(("ok   " if ok else "FAIL ") + msg)
        return ok

    def summary(self):
        print(f"{self.name}: {self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0


def run(checks, main, usage, many=False):
    if len(sys.argv) != 2 and not (many and len(sys.argv) > 2):
        print(usage, file=sys.stderr)
        return 2
    try:
        main(sys.argv[1:] if many else sys.argv[1])
    except Exception as e:  # noqa: BLE001 - any error is a failed comparison, reported
        traceback.print_exc()
        print(f"{checks.name}: error: {e}")
        checks.failed += 1
    return checks.summary()
