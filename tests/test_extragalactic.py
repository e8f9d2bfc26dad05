"""Other galaxies: redshift integral against closed forms and the paper's xi, optical depths
against ebltable and the CMB length, cascade energy conservation and shape (docs/physics.md sec. 5)."""

import math

import numpy as np
import pytest

from corona_jax import absorption, cascade, cosmology, extragalactic, forward, grids, milky_way, sky, tables, units
from corona_jax import table_generation as generation
from corona_jax.errors import ConfigError
from corona_jax.units import C_CM_S, KPC_CM, M_STAR_MW_MSUN
from h5files import assert_same_h5

E_S = grids.secondary_energy_grid(grids.resolution("coarse"))


def test_redshift_integral_einstein_de_sitter_power_law():
    # constant rho*, Omega_M = 1: I(E0) = (c / 4 pi H0) (rho / M*) L0 E0^-alpha
    #   * [1 - (1 + z_max)^-(alpha + 1/2)] / (alpha + 1/2)
    eds = cosmology.Cosmology(Omega_M=1.0, Omega_L=0.0, z_max=4.0)
    rho = 3.0e8  # M_sun Mpc^-3
    w = extragalactic.redshift_weights(E_S, eds, stellar_mass_density=lambda z: np.full_like(z, rho))
    alpha = 2.3
    got = extragalactic.redshift_integral(w.nu, w.emitted_GeV, lambda E: E**-alpha)
    H0 = float(cosmology.hubble_per_s(0.0, eds))
    expected = (C_CM_S / (4 * math.pi * H0) * rho / (M_STAR_MW_MSUN * units.MPC_CM**3) * E_S**-alpha
                * (1 - 5.0 ** -(alpha + 0.5)) / (alpha + 0.5))
    low = E_S < E_S[-1] / 5  # every emitted energy (1+z) E0 still on the grid
    np.testing.assert_allclose(got[low], expected[low], rtol=3e-5)  # 400-node trapezoid: 1.1e-5


def _absorbed_fraction_direct(E0_GeV, cosmo, ebl, alpha):
    """Absorbed / unabsorbed flux of all galaxies for L ~ E^-alpha, by the trapezoid rule in z on
    20001 nodes geometric from 1e-10 (resolving absorption lengths down to ~1 kpc), with tau_CMB
    accumulated on the same nodes."""
    z = np.concatenate([[0.0], np.geomspace(1e-10, cosmo.z_max, 20001)])
    rate = ((1 + z) ** 3 * absorption.cmb_absorption_today_per_kpc((1 + z)[None, :] ** 2 * E0_GeV[:, None])
            * cosmology.distance_per_redshift_cm(z, cosmo) / KPC_CM)
    tau_cmb = np.concatenate([np.zeros((E0_GeV.size, 1)),
                              np.cumsum(0.5 * (rate[:, 1:] + rate[:, :-1]) * np.diff(z), axis=1)], axis=1)
    tau = tau_cmb + absorption.tau_ebl(E0_GeV, z, ebl)
    f = cosmology.galaxy_intensity_weights_cm2_sr(z, 1.0, cosmo) * ((1 + z)[None, :] * E0_GeV[:, None]) ** -alpha
    return np.trapezoid(f * np.exp(-tau), z, axis=1) / np.trapezoid(f, z, axis=1)


def test_exponential_moments_against_quad():
    # both sides of the series switch at |d| = 1e-3, and optically thick steps
    from scipy.integrate import quad

    d = np.array([1e-9, 9.99e-4, 1.001e-3, 0.3, 7.0, 2.0e3, 1.0e6])
    a, b = extragalactic.exponential_moments(d)
    for dk, ak, bk in zip(d, a, b):
        u_max = min(dk, 60.0)  # u = d t; e^-60 is negligible
        a_ref = quad(lambda u: (1 - u / dk) * math.exp(-u), 0, u_max, epsabs=0, epsrel=1e-13)[0] / dk
        b_ref = quad(lambda u: u / dk * math.exp(-u), 0, u_max, epsabs=0, epsrel=1e-13)[0] / dk
        assert (ak, bk) == pytest.approx((a_ref, b_ref), rel=1e-11, abs=0.0)
    a0, b0 = extragalactic.exponential_moments(np.zeros(1))
    assert a0[0] == b0[0] == 0.5  # no absorption: the trapezoid rule


def test_absorbed_other_galaxies_against_a_fine_direct_integral():
    # above ~50 TeV the absorption length is kpc to Mpc: only z << 0.01 contributes, which the
    # redshift quadrature must resolve; below 1 TeV absorption is mild
    cosmo, ebl, alpha = cosmology.Cosmology(), tables.load_ebl_table(), 2.4
    w = extragalactic.redshift_weights(E_S, cosmo, ebl=ebl)
    free = extragalactic.redshift_integral(w.nu, w.emitted_GeV, lambda E: E**-alpha)
    absorbed = extragalactic.redshift_integral(w.gamma, w.emitted_GeV, lambda E: E**-alpha)
    low, high = E_S <= 1.0e3, (E_S >= 5.0e4) & (E_S <= 1.0e7)
    np.testing.assert_allclose((absorbed / free)[low], _absorbed_fraction_direct(E_S[low], cosmo, ebl, alpha),
                               rtol=1e-4)
    np.testing.assert_allclose((absorbed / free)[high], _absorbed_fraction_direct(E_S[high], cosmo, ebl, alpha),
                               rtol=5e-3)


def test_paper_xi_formula_matches_the_full_integral_for_a_power_law(coarse_forward_model):
    # q(E, r) = f(r) E^-alpha: the anticentre flux over the redshift integral equals the
    # paper's xi = M*_MW I_MW / (4 pi c I_z I_V)
    m = coarse_forward_model
    tm = m.transport
    r = np.asarray(tm.centres_kpc)
    f = (1 + (r / 3) ** 2) ** -1.5 * (r < 250)
    E = np.asarray(m.milky_way.E_secondary_GeV)
    alpha = 2.4
    q = f[None, :] * E[:, None] ** -alpha
    anticentre = np.asarray(sky.intensity(m.milky_way.path_nu_kpc, q))[-1]
    L0 = float(milky_way.volume_integral(f, np.asarray(tm.volumes_kpc3)))
    w = extragalactic.redshift_weights(E, m.config.cosmology)
    other = extragalactic.redshift_integral(w.nu, w.emitted_GeV, lambda E: L0 * E**-alpha)
    xi = extragalactic.xi_paper(f, np.ones_like(f), np.asarray(tm.faces_kpc), alpha)
    low = E < E[-1] / 10
    np.testing.assert_allclose(anticentre[low] / other[low], xi, rtol=1e-4)


def test_tau_ebl_equals_ebltable_inside_its_range():
    ebltable = pytest.importorskip("ebltable.tau_from_model")
    reference = ebltable.OptDepth.readmodel("inoue")
    E = np.geomspace(1.2, 8.5e4, 41)
    z = np.array([0.004, 0.05, 0.1, 0.55, 1.0, 3.3, 9.5])
    ours = absorption.tau_ebl(E, z, tables.load_ebl_table())
    theirs = reference.opt_depth(z, E / 1e3).T
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


def test_tau_ebl_range_policy_and_published_values():
    t = tables.load_ebl_table()
    assert np.all(absorption.tau_ebl([0.5], [1.0, 5.0], t) == 0.0)  # below 1 GeV: transparent
    np.testing.assert_array_equal(absorption.tau_ebl([2e5], [0.5], t), absorption.tau_ebl([t.E0_GeV[-1]], [0.5], t))
    with pytest.raises(ConfigError, match="tabulated"):
        absorption.tau_ebl([10.0], [11.0], t)
    # the table's own nodes at 1 TeV: z = 0.1 and z = 1 (Inoue et al. 2013 baseline)
    tau = absorption.tau_ebl([1.0e3], [0.1, 1.0], t)[0]
    np.testing.assert_allclose(tau, [0.764, 8.97], rtol=1e-12)


def test_inoue_table_holds_no_cmb():
    # at 89 TeV from z = 10 the CMB alone gives a far larger depth than the table: the
    # table is EBL only, and the CMB part must be added
    t = tables.load_ebl_table()
    tau_table = absorption.tau_ebl([t.E0_GeV[-1]], [10.0], t)[0, 0]
    assert absorption.tau_cmb([t.E0_GeV[-1]], [10.0], cosmology.Cosmology())[0, 0] > 10 * tau_table


def test_tau_cmb_at_small_z_is_distance_over_the_milky_way_length():
    cosmo = cosmology.Cosmology()
    z = 1e-4
    distance_kpc = C_CM_S * z / float(cosmology.hubble_per_s(0.0, cosmo)) / KPC_CM
    E = np.array([3e5, 2.2e6, 1e8])
    expected = distance_kpc / absorption.cmb_attenuation_length_kpc(E)
    np.testing.assert_allclose(absorption.tau_cmb(E, [z], cosmo)[:, 0], expected, rtol=2e-3)


@pytest.mark.parametrize("E0_GeV, z", [(1.0e3, 6.0), (1.0e4, 1.0), (1.0e4, 3.0), (1.0e5, 1.0), (1.0e6, 2.0)])
def test_tau_cmb_against_direct_integration_along_the_ray(E0_GeV, z):
    # at z' the photon has (1+z') E0 and the CMB T0 (1+z'): integrate 1/lambda(E, T) dl/dz' directly
    from scipy.integrate import quad

    cosmo = cosmology.Cosmology()

    def rate_per_unit_z(zz):
        kappa = absorption.cmb_absorption_per_kpc((1 + zz) * E0_GeV, units.T_CMB_K * (1 + zz))
        return float(kappa) * float(cosmology.distance_per_redshift_cm(zz, cosmo)) / KPC_CM

    direct = quad(rate_per_unit_z, 0.0, z, epsrel=1e-8, limit=200)[0]
    assert absorption.tau_cmb([E0_GeV], [z], cosmo)[0, 0] == pytest.approx(direct, rel=1e-2)


@pytest.fixture(scope="module")
def small_cascade():
    cosmo = cosmology.Cosmology(z_max=0.3)
    grid = cascade.cascade_grid(cosmo.z_max)
    return grid, cascade.optical_depth(cosmo, tables.load_ebl_table())


@pytest.mark.parametrize("E_inj_GeV", [3.0e3, 1.0e5, 1.0e8])
def test_cascade_conserves_energy_and_has_the_low_energy_slope(small_cascade, E_inj_GeV):
    grid, tau = small_cascade
    E = grid.E_GeV
    m = int(np.argmin(np.abs(np.log(E / E_inj_GeV))))
    k = grid.z.size - 1
    injected = np.zeros(E.size)
    injected[m] = 1.0
    full, surviving = cascade.propagate(grid, k, injected, tau)
    redshifted = E[m] / (1 + grid.z[k])
    # what is absorbed reappears at lower energies: all energy arrives, less the redshift
    # losses (and < 1 % left in leptons below 1 GeV and photons below 1e-8 GeV)
    assert (full * E).sum() / redshifted == pytest.approx(1.0, abs=0.02)
    assert (surviving * E).sum() / redshifted < 0.05  # the primaries are (nearly) all absorbed
    low = (E > 1e-5) & (E < 1e-3)  # Thomson-cooled pairs: dN/dE ~ E^-1.5
    slope = np.polyfit(np.log(E[low]), np.log(full[low] / grid.width_GeV[low]), 1)[0]
    assert slope == pytest.approx(-1.5, abs=0.05)


@pytest.mark.parametrize("E_inj_GeV", [1.0e5, 1.0e6])
def test_cascade_from_sources_in_the_first_step_carries_the_absorbed_energy(E_inj_GeV):
    # sources at 0 < z < z_1 (one cascade step), absorbed within Mpc: the cascade must return
    # the absorbed energy as a single source at z_1 does (propagate), up to the redshift
    # difference 1 + z_1; a trapezoid rule in z with no cascade from z = 0 returns half
    z1 = 10.0 ** (1.0 / cascade.PER_DECADE) - 1.0
    cosmo, ebl = cosmology.Cosmology(z_max=z1), tables.load_ebl_table()
    grid, tau = cascade.cascade_grid(z1), cascade.optical_depth(cosmo, ebl)
    E = grid.E_GeV
    m = int(np.argmin(np.abs(np.log(E / E_inj_GeV))))
    injected = np.zeros(E.size)
    injected[m] = 1.0
    full, surviving = cascade.propagate(grid, 1, injected, tau)
    single = ((full - surviving) * E)[E >= 0.1].sum() / (E[m] / (1 + z1) - (surviving * E).sum())

    E_s = grids.secondary_energy_grid(grids.resolution("default"))
    C = cascade.cascade_matrix(E_s, cosmo, ebl)
    w = extragalactic.redshift_weights(E_s, cosmo, ebl=ebl)
    spectrum = lambda E: E**-2 * np.exp(-0.5 * np.log(E / E_inj_GeV) ** 2)  # noqa: E731
    L = spectrum(E_s)
    free = extragalactic.redshift_integral(w.nu, w.emitted_GeV, spectrum)
    absorbed = extragalactic.redshift_integral(w.gamma, w.emitted_GeV, spectrum)
    ratio = np.sum(E_s**2 * (C @ L)) / np.sum(E_s**2 * (free - absorbed))
    assert single / (1 + z1) < ratio < single * 1.005


def test_lepton_cooling_conserves_energy():
    grid = cascade.cascade_grid(0.1)
    Y = cascade.lepton_cooling_matrix(grid, 2.7255)
    E = grid.E_GeV
    for e in (1.0e2, 1.0e5, 1.0e9):
        k = int(np.argmin(np.abs(E - e)))
        # all energy above LEPTON_MIN goes into photons
        assert (Y[k] * E).sum() == pytest.approx(E[k] - cascade.LEPTON_MIN_GeV, rel=1e-6)


def test_stored_cascade_matrix_needs_its_cosmology():
    with pytest.raises(ConfigError, match="cosmology"):
        tables.load_cascade_matrix(E_S, cosmology.Cosmology(H0_km_s_Mpc=70.0))
    with pytest.raises(ConfigError, match="no cascade matrix"):
        tables.load_cascade_matrix(np.geomspace(0.1, 1e10, 34), cosmology.Cosmology())
    with pytest.raises(ConfigError, match="flat"):
        cosmology.validate_cosmology(cosmology.Cosmology(Omega_M=0.5))


def test_extragalactic_gamma_pieces_add_up(coarse_forward_model):
    import jax

    from corona_jax import params

    pred = jax.jit(forward.forward)(params.preset("baseline"), coarse_forward_model)
    other, tot, mw = pred.extragalactic, pred.total, pred.milky_way
    np.testing.assert_allclose(other.gamma, other.gamma_absorbed + other.gamma_cascade, rtol=1e-12)
    assert np.all(np.asarray(other.gamma_absorbed) <= np.asarray(other.gamma_unabsorbed) * (1 + 1e-12))
    assert np.all(np.asarray(other.gamma_cascade) >= 0)
    np.testing.assert_allclose(tot.nu_all_flavour, mw.anticentre_nu_all_flavour + other.nu_all_flavour, rtol=1e-12)
    # the cascade carries less energy than was absorbed (redshift losses, photons below 0.1 GeV)
    E = np.asarray(coarse_forward_model.milky_way.E_secondary_GeV)
    absorbed = np.trapezoid(E**2 * (other.gamma_unabsorbed - other.gamma_absorbed), np.log(E))
    cascaded = np.trapezoid(E**2 * other.gamma_cascade, np.log(E))
    assert 0 < cascaded < absorbed


def test_gradient_through_the_other_galaxies(coarse_forward_model):
    # isotropic gamma rays at 100 GeV (absorbed + cascade) and neutrinos at 100 TeV
    import jax
    import jax.numpy as jnp

    from corona_jax import params

    m = coarse_forward_model
    E = np.asarray(m.milky_way.E_secondary_GeV)
    k_gamma, k_nu = int(np.argmin(np.abs(E - 1e2))), int(np.argmin(np.abs(E - 1e5)))

    def objective(p):
        pred = forward.forward(p, m)
        return jnp.log(pred.extragalactic.gamma[k_gamma]) + jnp.log(pred.total.nu_all_flavour[k_nu])

    p = jax.tree.map(jnp.asarray, params.preset("baseline"))
    grad = jax.grad(objective)(p)
    f = jax.jit(objective)
    for name in ("alpha", "log10_Emax_GeV", "log10_D0_cm2_s", "n0_outer_cm3", "Rmax_kpc"):
        x = float(getattr(p, name))
        h = 1e-4 * abs(x)
        fd = float(f(p._replace(**{name: x + h})) - f(p._replace(**{name: x - h}))) / (2 * h)
        assert float(getattr(grad, name)) == pytest.approx(fd, rel=2e-4, abs=1e-7), name


def test_ebl_table_regenerates_exactly(tmp_path):
    pytest.importorskip("ebltable")
    path = tmp_path / "ebl.h5"
    generation.write_ebl_table(str(path), generation.generate_ebl_table())
    assert_same_h5(tables.default_table_path(tables.EBL_TABLE_FILE), path)


@pytest.mark.slow
def test_cascade_table_regenerates_exactly(tmp_path):
    path = tmp_path / "cascade.h5"
    generation.write_cascade_tables(str(path), generation.generate_cascade_tables())
    # the triangular solves differ between LAPACK builds by ~1e-15 of the largest entry (7e-45
    # absolute against 1.1e-29 with this session's scipy); anything the physics changes is far larger
    assert_same_h5(tables.default_table_path(tables.CASCADE_TABLE_FILE), path, last_bits=1e-13)


def test_emission_kernel_at_table_nodes_and_between():
    from corona_jax import interactions

    pp = tables.load_pp_tables()
    E_p = pp.E_p_GeV[::4]
    K = interactions.emission_matrix("gamma", E_p, pp.E_s_GeV, pp)
    np.testing.assert_allclose(interactions.emission_kernel("gamma", E_p, pp)(pp.E_s_GeV), K, rtol=1e-14)
    # half way between two nodes in ln E: the geometric mean where both are positive
    mid = np.sqrt(pp.E_s_GeV[:-1] * pp.E_s_GeV[1:])
    both = (K[:-1] > 0) & (K[1:] > 0)
    got = interactions.emission_kernel("gamma", E_p, pp)(mid)
    np.testing.assert_allclose(got[both], np.sqrt(K[:-1] * K[1:])[both], rtol=1e-12)
    assert np.all(interactions.emission_kernel("gamma", E_p, pp)([pp.E_s_GeV[-1] * 1.01]) == 0)


def test_other_galaxies_agree_with_the_luminosity_interpolated_in_energy(coarse_forward_model):
    # the model integrates the emission kernel over redshift; the same integral of the Milky Way's
    # luminosity L(E), interpolated in ln L - ln E between the secondary energies, differs only by
    # that interpolation: 1.8 % at most on the coarse grid's 5 energies per decade (0.3 % at the
    # default resolution's 10; the kernel itself is interpolated on the pp table's 20)
    import jax

    from corona_jax import params

    m = coarse_forward_model
    pred = jax.jit(forward.forward)(params.preset("baseline"), m)
    E = np.asarray(m.milky_way.E_secondary_GeV)
    w = extragalactic.redshift_weights(E, m.config.cosmology)
    for L, weights, got in ((pred.milky_way.luminosity_nu_all_flavour, w.nu, pred.extragalactic.nu_all_flavour),
                            (pred.milky_way.luminosity_gamma, w.gamma, pred.extragalactic.gamma_absorbed)):
        log_L = np.log(np.maximum(np.asarray(L), 1e-300))
        spectrum = lambda Ez: np.exp(np.interp(np.log(Ez), np.log(E), log_L))  # noqa: E731
        expected = extragalactic.redshift_integral(weights, w.emitted_GeV, spectrum)
        useful = E < 1e8
        np.testing.assert_allclose(np.asarray(got)[useful], expected[useful], rtol=2.5e-2)
