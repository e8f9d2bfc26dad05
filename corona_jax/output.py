"""The result file (HDF5): groups /grids, /gas, /cr, /milky_way, /extragalactic and /total, with a
`units` attribute on every dataset; the parameters, the model configuration (ModelConfig:
resolution, boundary, history, observer, cosmology, tables, adjoint) and the versions as root
attributes. Every file of the package is written through `atomic_write`: to a temporary file
beside the target, flushed to the disk and renamed over it only once complete, so an existing
file is never left half-written and no temporary file is left behind. New HDF5 files are built
in memory (`new_hdf5`) and written in one piece: the HDF5 library never meets a full disk, which
it does not survive (it crashes the interpreter), and the user gets one line instead."""

import contextlib
import datetime
import io
import os
import shutil
import socket

import h5py
import jax
import numpy as np

from . import tables
from .drivers import CosmicRayResult, ForwardResult
from .errors import OutputError
from .forward import NEUTRINO_FLAVOURS

INTENSITY_UNITS = "GeV^-1 cm^-2 s^-1 sr^-1"


def _writable_dir(parent: str) -> bool:
    """The folder can be written to, and its owner did not take the write bits off."""
    return os.access(parent, os.W_OK) and bool(os.stat(parent).st_mode & 0o222)


def check_writable(path: str) -> str:
    """Fail early, with one clear line, if path cannot be written or is write-protected; return it absolute.

    Call it before the work starts, so that no run is lost to an unwritable target."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    if os.path.isdir(path):
        raise OutputError(f"output path {path} is a directory")
    if not os.path.isdir(parent):
        raise OutputError(f"output directory {parent} does not exist")
    if not _writable_dir(parent):
        raise OutputError(f"output directory {parent} is not writable")
    if os.path.exists(path) and not (os.stat(path).st_mode & 0o222 and os.access(path, os.W_OK)):
        raise OutputError(f"output file {path} is write-protected; remove it or choose another name")
    return path


def check_space(path: str, nbytes: int) -> str:
    """Fail with one line if the disk holding path has less than nbytes free (for writers that do
    not go through new_hdf5, whose libraries do not survive a full disk); return path."""
    free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
    if free < nbytes:
        raise OutputError(f"cannot write {path}: No space left on device ({nbytes / 1e6:.1f} MB needed, "
                          f"{free / 1e6:.1f} MB free)")
    return path


def check_plot_dir(directory: str) -> str:
    """Fail early if a folder for figures cannot be made or written; return it absolute."""
    directory = os.path.abspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise OutputError(f"plot folder {directory} exists and is not a folder")
    existing = directory
    while not os.path.isdir(existing):
        existing = os.path.dirname(existing)
    if not _writable_dir(existing):
        raise OutputError(f"plot folder {directory} cannot be written ({existing} is not writable)")
    return directory


def _temporary_name(path: str, suffix: str) -> str:
    """A hidden name beside path that says whose it is: .NAME.PID.RANDOM.SUFFIX"""
    return os.path.join(os.path.dirname(path),
                        f".{os.path.basename(path)}.{os.getpid()}.{os.urandom(4).hex()}{suffix}")


def _remove_orphans(path: str):
    """Temporary files of this target left by processes that no longer exist (killed mid-write)."""
    prefix = f".{os.path.basename(path)}."
    for name in os.listdir(os.path.dirname(path)):
        if name.startswith(prefix) and name.count(".") >= 3:
            pid = name[len(prefix):].split(".", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(os.path.dirname(path), name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_write(path: str, suffix: str = ".tmp"):
    """Yield a temporary path beside `path`; on success rename it over `path` with the mode
    the umask gives new files, on any error or interrupt remove it. OSError -> OutputError.

    A process killed outright (SIGKILL) cannot clean up: the next write to the same target
    removes the temporary files of processes that no longer exist. The old file is intact
    until the rename."""
    path = check_writable(path)
    _remove_orphans(path)
    tmp = _temporary_name(path, suffix)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        _sync(tmp)  # on the disk before it takes the old file's place
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _sync(path: str):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def new_hdf5(path: str, suffix: str = ".h5.tmp"):
    """Yield a new h5py.File held in memory; when the block ends without error, write it to a
    temporary file beside `path` in one piece and rename that over `path` (atomic_write). A full
    disk or any other OSError is an OutputError; the old file stays as it was."""
    with atomic_write(path, suffix) as tmp:
        image = io.BytesIO()
        with h5py.File(image, "w") as f:
            yield f
        with open(tmp, "wb") as out:
            out.write(image.getbuffer())


@contextlib.contextmanager
def run_lock(path: str):
    """Hold PATH.lock while a long run (sweep, calibration, sampling) writes path.

    The lock file is created exclusively (O_EXCL, which network file systems honour where HDF5's
    own locks do not) and holds the host, the process id and the start time. A second run on the
    same output gets one line naming the holder. A lock left by a process of this host that no
    longer exists (killed outright) is taken over; one from another host is reported, since only
    its user can tell whether that run still lives."""
    lock = os.path.abspath(path) + ".lock"
    host = socket.gethostname()
    for attempt in range(2):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            holder = _lock_holder(lock)
            if attempt == 0 and holder and holder[0] == host and not _alive(holder[1]):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(lock)  # stale: its process is gone
                continue
            who = f"process {holder[1]} on {holder[0]}, since {holder[2]}" if holder else "unknown process"
            raise OutputError(f"another run ({who}) is writing {path}; wait for it to end, or delete {lock} "
                              "if that run is gone") from None
        except OSError as exc:
            raise OutputError(f"cannot create the lock file {lock}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w") as f:
        f.write(f"{host} {os.getpid()} {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}\n")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.remove(lock)


def _lock_holder(lock: str):
    """(host, pid, start time) written in a lock file; None if it cannot be read."""
    try:
        with open(lock) as f:
            host, pid, since = f.read().split()
        return host, int(pid), since
    except (OSError, ValueError):
        return None


def _dataset(group, name, data, units, description):
    d = group.create_dataset(name, data=np.asarray(data, dtype=np.float64))
    d.attrs["units"] = units
    d.attrs["description"] = description


def write_cosmic_rays(path: str, result: CosmicRayResult) -> str:
    """Write /grids, /gas and /cr of a CosmicRayResult; returns the absolute path."""
    return _write(path, result, lambda f: None)


def write_forward(path: str, result: ForwardResult, healpix_maps=None, xi=None) -> str:
    """Write /grids, /gas, /cr, /milky_way, /extragalactic and /total; returns the absolute path.

    healpix_maps: optional {"E_GeV": E, "nside": n, "gamma": map, "nu_per_flavour": map}.
    xi: optional dict of the paper's ratio (attributes of /extragalactic).
    """
    def more(f):
        _write_milky_way(f, result, healpix_maps)
        _write_extragalactic(f, result, xi or {})

    return _write(path, result.cosmic_rays, more)


def _write_extragalactic(f, result: ForwardResult, xi):
    other, tot = result.extragalactic, result.total
    per = 1.0 / NEUTRINO_FLAVOURS
    g = f.create_group("extragalactic")
    g.attrs["description"] = "coronae of all other galaxies: the Milky Way scaled by stellar mass, z <= z_max"
    for key, value in result.model.config.cosmology._asdict().items():
        g.attrs[f"cosmology_{key}"] = value
    ebl = tables.load_ebl_table(tables.table_path(result.model.config.ebl_table))
    g.attrs["ebl"] = (f"{ebl.attrs.get('reference', 'unknown EBL model')}; CMB added; tau_EBL = 0 below "
                      f"{ebl.E0_GeV[0]:.3g} GeV, held at its {ebl.E0_GeV[-1]:.3g} GeV value above")
    for key, value in xi.items():
        g.attrs[key] = value
    for name, data, what in [
        ("nu_all_flavour", other.nu_all_flavour, "nu + nubar, all flavours"),
        ("nu_per_flavour", other.nu_all_flavour * per, "nu + nubar, one flavour"),
        ("gamma_unabsorbed", other.gamma_unabsorbed, "gamma rays without any interaction"),
        ("gamma_absorbed", other.gamma_absorbed, "gamma rays with EBL + CMB absorption, no cascade"),
        ("gamma_cascade", other.gamma_cascade, "cascade photons alone"),
        ("gamma", other.gamma, "gamma rays with absorption and cascade"),
    ]:
        _dataset(g, name, data, INTENSITY_UNITS, what)
    g = f.create_group("total")
    g.attrs["description"] = "isotropic flux: Milky Way corona towards the anticentre + all other galaxies"
    _dataset(g, "gamma", tot.gamma, INTENSITY_UNITS, "isotropic gamma rays (absorbed, with cascade)")
    _dataset(g, "nu_all_flavour", tot.nu_all_flavour, INTENSITY_UNITS, "nu + nubar, all flavours")
    _dataset(g, "nu_per_flavour", tot.nu_all_flavour * per, INTENSITY_UNITS, "nu + nubar, one flavour")


def _write_milky_way(f, result: ForwardResult, healpix_maps):
    m, mw = result.model.milky_way, result.milky_way
    _dataset(f["grids"], "E_secondary_GeV", m.E_secondary_GeV, "GeV", "gamma-ray and neutrino energy")
    _dataset(f["grids"], "psi_rad", m.psi_rad, "rad", "angle between the line of sight and the Galactic centre")
    g = f.create_group("milky_way")
    g.attrs["observer_kpc"] = result.model.config.observer_kpc
    g.attrs["axes"] = "(psi, E) for intensity_*, (E,) otherwise"
    g.attrs["flavours"] = "per flavour = all flavour / 3 (1:1:1 after oscillation); nu + nubar"
    per = 1.0 / NEUTRINO_FLAVOURS
    for name, data, what in [
        ("intensity_gamma", mw.gamma, "I(psi, E), absorption on the CMB included"),
        ("intensity_nu_all_flavour", mw.nu_all_flavour, "I(psi, E), nu + nubar of all flavours"),
        ("intensity_nu_per_flavour", mw.nu_all_flavour * per, "I(psi, E), nu + nubar of one flavour"),
        ("sky_mean_gamma", mw.sky_mean_gamma, "all-sky mean (1/2) int I dcos(psi)"),
        ("sky_mean_nu_all_flavour", mw.sky_mean_nu_all_flavour, "all-sky mean"),
        ("sky_mean_nu_per_flavour", mw.sky_mean_nu_all_flavour * per, "all-sky mean"),
        ("anticentre_gamma", mw.anticentre_gamma, "I(E, psi = pi): the isotropic part"),
        ("anticentre_nu_all_flavour", mw.anticentre_nu_all_flavour, "I(E, psi = pi)"),
        ("anticentre_nu_per_flavour", mw.anticentre_nu_all_flavour * per, "I(E, psi = pi)"),
    ]:
        _dataset(g, name, data, INTENSITY_UNITS, what)
    _dataset(g, "dipole_gamma", mw.dipole_gamma, "1", "3 <I cos psi> / <I>; > 0 towards the Galactic centre")
    _dataset(g, "dipole_nu", mw.dipole_nu, "1", "3 <I cos psi> / <I>; > 0 towards the Galactic centre")
    _dataset(g, "luminosity_gamma", mw.luminosity_gamma, "GeV^-1 s^-1", "spectral luminosity int q dV")
    _dataset(g, "luminosity_nu_all_flavour", mw.luminosity_nu_all_flavour, "GeV^-1 s^-1", "int q dV")
    _dataset(g, "emissivity_gamma", mw.emissivity_gamma, "GeV^-1 cm^-3 s^-1", "q(E, r), Eq. (6); axes (E, r)")
    _dataset(g, "emissivity_nu_all_flavour", mw.emissivity_nu_all_flavour, "GeV^-1 cm^-3 s^-1", "q(E, r)")
    kappa = np.asarray(m.cmb_absorption_per_kpc)
    with np.errstate(divide="ignore"):
        _dataset(g, "cmb_attenuation_length_kpc", np.where(kappa > 0, 1.0 / kappa, np.inf), "kpc",
                 "gamma gamma -> e+ e- on the CMB (T = 2.7255 K); inf: transparent")
    if healpix_maps:
        h = g.create_group("healpix")
        h.attrs["nside"] = healpix_maps["nside"]
        h.attrs["E_GeV"] = healpix_maps["E_GeV"]
        h.attrs["ordering"] = "RING"
        h.attrs["coordinates"] = "Galactic"
        for name in ("gamma", "nu_per_flavour"):
            _dataset(h, name, healpix_maps[name], INTENSITY_UNITS, f"I at E = {healpix_maps['E_GeV']:g} GeV per pixel")


def _write(path: str, result: CosmicRayResult, write_more) -> str:
    from . import __version__

    with new_hdf5(path) as f:
        f.attrs["corona_jax_version"] = __version__
        f.attrs["jax_version"] = jax.__version__
        f.attrs["created_utc"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
        f.attrs["reference"] = "Kalashev & Troitsky, Phys. Rev. D (2016), arXiv:1608.07421"
        for name, value in result.params._asdict().items():
            f.attrs[f"param_{name}"] = float(value)
        f.attrs["LCR_erg_s_meaning"] = ("param_log10_LCR_erg_s: total-energy luminosity int_{E>1 GeV} E Q dE dV, "
                                        "rest mass included")
        f.attrs["LCR_kinetic_erg_s"] = result.LCR_kinetic_erg_s
        for name, value in result.config.describe().items():
            f.attrs[name] = value
        g = f.create_group("grids")
        _dataset(g, "E_GeV", result.E_GeV, "GeV", "proton total energy")
        _dataset(g, "r_kpc", result.r_kpc, "kpc", "galactocentric radius of cell centres")
        _dataset(g, "r_faces_kpc", result.r_faces_kpc, "kpc", "finite-volume cell faces")
        g = f.create_group("gas")
        _dataset(g, "n_cm3", result.n_gas_cm3, "cm^-3", "gas density n_g per cell, Eq. (1)-(3)")
        g = f.create_group("cr")
        _dataset(g, "j_per_GeV_cm3", result.j_per_GeV_cm3, "GeV^-1 cm^-3",
                 "proton density dn/dE today (t = 10 Gyr), axes (E, r)")
        _dataset(g, "unit_density_Gyr", result.unit_density_Gyr, "Gyr",
                 "G(E, r): density per unit source rate; j = A E^-alpha exp(-E/Emax) G")
        _dataset(g, "local_flux_per_GeV_cm2_s_sr", result.local_flux_per_GeV_cm2_s_sr,
                 "GeV^-1 cm^-2 s^-1 sr^-1", f"beta c j / 4 pi at the observer, r = {result.config.observer_kpc:g} kpc")
        norm = result.normalisation
        g.attrs["normalisation"] = "luminosity" if norm is None else "data"
        if norm is not None:
            g.attrs["binding_dataset"] = norm.binding_dataset
            g.attrs["binding_E_GeV"] = norm.binding_E_GeV
            g.attrs["binding_energy_kind"] = norm.binding_energy_kind  # binding_E_GeV is kinetic (T) or total
            g.attrs["binding_flux_per_GeV_cm2_s_sr"] = norm.binding_flux
            g.attrs["amplitude_per_GeV_cm3_s"] = norm.amplitude_per_GeV_cm3_s
            g.attrs["datasets"] = ",".join(norm.ratios)
        write_more(f)
    return path
