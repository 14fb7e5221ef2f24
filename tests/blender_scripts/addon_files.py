"""A job sent from one .blend does not land in the file opened after it: it is kept for Recent Results, and
imported from there on request; a job sent from the file now open lands as usual."""

import os

import bpy
from addon_support import captured_output, config, generate, install, session, tick_until
from harness import run


def main() -> dict:
    settings = config()
    install(settings["zip"], endpoint=settings["endpoint"], auto_start=False)
    tick_until(lambda: session().connected, timeout=20)
    other = os.path.join(settings["workdir"], "other.blend")
    bpy.ops.wm.save_as_mainfile(filepath=other)
    bpy.ops.wm.read_homefile(use_empty=True)  # File > New

    job = generate(settings["image"], 32)
    bpy.ops.wm.open_mainfile(filepath=other)  # File > Open, while the model is being made
    with captured_output() as output:
        tick_until(lambda: job.state.finished)
    report = {
        "made_elsewhere": {
            "state": job.state.name,
            "objects": [obj.name for obj in bpy.data.objects],
            "reports": [line for line in output if line.startswith("Info:")],
        }
    }

    here = generate(settings["image"], 32)
    tick_until(lambda: here.state.finished)
    report["made_here"] = {"state": here.state.name, "objects": here.objects}

    assert bpy.ops.triposr.refresh_results() == {"FINISHED"}
    report["recent"] = [record["job"] for record in session().recent]
    report["kept_job"] = job.id
    assert bpy.ops.triposr.import_result(job=job.id, name="kept", wait=True) == {"FINISHED"}
    report["imported"] = sorted(obj.name for obj in bpy.data.objects)
    return report


run(main)
