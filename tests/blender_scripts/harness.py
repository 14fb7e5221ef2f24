"""Helpers for scripts that run inside Blender (the bpy wheel) on behalf of the tests."""

import json
import os
import sys
import traceback


def run(main) -> None:
    """Call `main()`, write its dict for the test, and leave at once.

    bpy can hang while freeing memory at interpreter exit, hence `os._exit`.
    """
    try:
        report = main()
        with open(os.environ["TRIPOSR_TEST_RESULT"], "w", encoding="utf-8") as stream:
            json.dump(report, stream)
        code = 0
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
