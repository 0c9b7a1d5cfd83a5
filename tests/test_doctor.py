import subprocess
import sys


def test_doctor_exits_zero_and_names_detectron2():
    out = subprocess.run([sys.executable, "-m", "spine_det.tools", "doctor", "--device", "cpu"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "detectron2 source" in out.stdout
    assert "mask r-cnn forward" in out.stdout and "doctor: OK" in out.stdout


def test_doctor_fails_with_one_line_on_a_bad_device():
    out = subprocess.run([sys.executable, "-m", "spine_det.tools", "doctor", "--device", "nonsense"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert out.stdout.strip().splitlines()[-1].startswith("doctor: FAILED:")
