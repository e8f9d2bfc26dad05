"""Physical constants and unit conversions (one place for all of them).

Internal unit system of the numerics: energy GeV, length kpc, time Gyr,
number density cm^-3, cross sections mb. Fluxes at the package boundary are in
GeV^-1 cm^-2 s^-1 sr^-1. Values follow docs/physics.md ("Units and
constants"); the CODATA / IAU sources are named beside each.
"""

KPC_CM = 3.0856775814913673e21  # IAU 2015 parsec x 1e3 [cm]
MPC_CM = 3.0856775814913673e24  # megaparsec [cm]
KM_CM = 1.0e5  # kilometre [cm]
GYR_S = 3.15576e16  # Julian Gyr [s]
YEAR_S = 3.15576e7  # Julian year [s]
C_CM_S = 2.99792458e10  # speed of light [cm/s]
MB_CM2 = 1.0e-27  # millibarn [cm^2]
PROTON_MASS_GEV = 0.938272  # proton rest energy [GeV] (PDG)
ERG_PER_GEV = 1.602176634e-3  # 1 GeV in erg (exact SI eV)
T_CMB_K = 2.7255  # CMB temperature today [K] (Fixsen 2009)
R_SUN_KPC = 8.5  # Sun's galactocentric distance used by the paper [kpc]
M_STAR_MW_MSUN = 6.43e10  # Milky Way stellar mass (McMillan 2011) [M_sun]
RHO_CRIT_OVER_H2_MSUN_MPC3 = 2.77536627e11  # critical density / h^2 [M_sun Mpc^-3] (PDG 2022)
OMEGA_B_H2 = 0.02237  # baryon density Omega_b h^2 (Planck 2018, TT,TE,EE+lowE+lensing)
ELECTRON_MASS_GEV = 0.51099895e-3  # electron rest energy [GeV] (CODATA 2018)
SIGMA_THOMSON_CM2 = 6.6524587321e-25  # Thomson cross section [cm^2] (CODATA 2018)
HBAR_C_GEV_CM = 1.973269804e-14  # hbar c [GeV cm] (CODATA 2018, exact SI)
K_BOLTZMANN_GEV_K = 8.617333262e-14  # Boltzmann constant [GeV/K] (CODATA 2018, exact SI)


def cm2_s_to_kpc2_gyr(x_cm2_s):
    """Convert a diffusion coefficient from cm^2/s to kpc^2/Gyr."""
    return x_cm2_s * GYR_S / KPC_CM**2
PROTON_MASS_G = 1.67262192369e-24  # proton mass [g] (CODATA 2018)
M_SUN_G = 1.98841e33  # solar mass [g] (IAU 2015 nominal GM_sun / G, CODATA 2018 G)
