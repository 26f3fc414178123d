"""Peak resident memory of this process, for the benchmarks (Linux only)."""


def status_mb(field):
    """A memory field of /proc/self/status (e.g. "VmRSS", "VmHWM"), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise KeyError(field)


def reset_peak_rss():
    """Resets the kernel's peak-RSS mark (Linux >= 4.0); returns current RSS, MB."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    return status_mb("VmRSS")


def extra_peak_mb(base):
    """Peak RSS since `reset_peak_rss` returned `base`, minus `base`, in MB."""
    return status_mb("VmHWM") - base
