//! Country and authority codes accepted in the MRZ: ISO 3166-1 alpha-3 plus the codes ICAO Doc 9303
//! Part 3 (section 5) adds for states, organizations and nationality statuses.
//!
//! Why a static table and not a crate: the list changes a few times a decade, the controller must
//! give the same answer offline for ten years, and the one well-kept crate (`celes`) now requires a
//! newer Rust than the workspace pins. The ISO part was cross-checked against `celes` 3.0 (which
//! also carries the user-assigned `XKX`, deliberately left out: ICAO uses `RKS` for Kosovo).
//! When ISO adds or withdraws a code, edit [`ISO_3166_ALPHA3`] and the count in its test.

/// ISO 3166-1 alpha-3 codes of the officially assigned countries, sorted (binary-searched).
pub const ISO_3166_ALPHA3: [&str; 249] = [
    "ABW", "AFG", "AGO", "AIA", "ALA", "ALB", "AND", "ARE", "ARG", "ARM", "ASM", "ATA", "ATF",
    "ATG", "AUS", "AUT", "AZE", "BDI", "BEL", "BEN", "BES", "BFA", "BGD", "BGR", "BHR", "BHS",
    "BIH", "BLM", "BLR", "BLZ", "BMU", "BOL", "BRA", "BRB", "BRN", "BTN", "BVT", "BWA", "CAF",
    "CAN", "CCK", "CHE", "CHL", "CHN", "CIV", "CMR", "COD", "COG", "COK", "COL", "COM", "CPV",
    "CRI", "CUB", "CUW", "CXR", "CYM", "CYP", "CZE", "DEU", "DJI", "DMA", "DNK", "DOM", "DZA",
    "ECU", "EGY", "ERI", "ESH", "ESP", "EST", "ETH", "FIN", "FJI", "FLK", "FRA", "FRO", "FSM",
    "GAB", "GBR", "GEO", "GGY", "GHA", "GIB", "GIN", "GLP", "GMB", "GNB", "GNQ", "GRC", "GRD",
    "GRL", "GTM", "GUF", "GUM", "GUY", "HKG", "HMD", "HND", "HRV", "HTI", "HUN", "IDN", "IMN",
    "IND", "IOT", "IRL", "IRN", "IRQ", "ISL", "ISR", "ITA", "JAM", "JEY", "JOR", "JPN", "KAZ",
    "KEN", "KGZ", "KHM", "KIR", "KNA", "KOR", "KWT", "LAO", "LBN", "LBR", "LBY", "LCA", "LIE",
    "LKA", "LSO", "LTU", "LUX", "LVA", "MAC", "MAF", "MAR", "MCO", "MDA", "MDG", "MDV", "MEX",
    "MHL", "MKD", "MLI", "MLT", "MMR", "MNE", "MNG", "MNP", "MOZ", "MRT", "MSR", "MTQ", "MUS",
    "MWI", "MYS", "MYT", "NAM", "NCL", "NER", "NFK", "NGA", "NIC", "NIU", "NLD", "NOR", "NPL",
    "NRU", "NZL", "OMN", "PAK", "PAN", "PCN", "PER", "PHL", "PLW", "PNG", "POL", "PRI", "PRK",
    "PRT", "PRY", "PSE", "PYF", "QAT", "REU", "ROU", "RUS", "RWA", "SAU", "SDN", "SEN", "SGP",
    "SGS", "SHN", "SJM", "SLB", "SLE", "SLV", "SMR", "SOM", "SPM", "SRB", "SSD", "STP", "SUR",
    "SVK", "SVN", "SWE", "SWZ", "SXM", "SYC", "SYR", "TCA", "TCD", "TGO", "THA", "TJK", "TKL",
    "TKM", "TLS", "TON", "TTO", "TUN", "TUR", "TUV", "TWN", "TZA", "UGA", "UKR", "UMI", "URY",
    "USA", "UZB", "VAT", "VCT", "VEN", "VGB", "VIR", "VNM", "VUT", "WLF", "WSM", "YEM", "ZAF",
    "ZMB", "ZWE",
];

/// Codes of ICAO Doc 9303 Part 3 that are not ISO 3166-1 alpha-3 codes.
///
/// `nationality_only` marks statuses (stateless, refugee, unspecified, and the British
/// nationality statuses, whose passports GBR issues) that describe a holder and can never be an
/// issuing state.
pub const ICAO_SPECIAL_CODES: &[IcaoCode] = &[
    IcaoCode::new("D", "Germany (the MRZ uses D, not DEU)", false),
    IcaoCode::new("EUE", "European Union", false),
    IcaoCode::new("GBD", "British Overseas Territories Citizen", true),
    IcaoCode::new("GBN", "British National (Overseas)", true),
    IcaoCode::new("GBO", "British Overseas Citizen", true),
    IcaoCode::new("GBP", "British Protected Person", true),
    IcaoCode::new("GBS", "British Subject", true),
    IcaoCode::new("RKS", "Kosovo", false),
    IcaoCode::new("UNA", "Specialized agency of the United Nations", false),
    IcaoCode::new("UNK", "Resident of Kosovo (UNMIK travel document)", false),
    IcaoCode::new("UNO", "United Nations Organization", false),
    IcaoCode::new("UTO", "Utopia (ICAO specimen documents)", false),
    IcaoCode::new("XBA", "African Development Bank", false),
    IcaoCode::new("XCC", "Caribbean Community", false),
    IcaoCode::new("XCE", "Council of Europe", false),
    IcaoCode::new(
        "XCO",
        "Common Market for Eastern and Southern Africa",
        false,
    ),
    IcaoCode::new("XEC", "Economic Community of West African States", false),
    IcaoCode::new("XES", "Organisation of Eastern Caribbean States", false),
    IcaoCode::new("XIM", "African Export-Import Bank", false),
    IcaoCode::new("XMP", "Parliamentary Assembly of the Mediterranean", false),
    IcaoCode::new("XOM", "Sovereign Military Order of Malta", false),
    IcaoCode::new("XPO", "International Criminal Police Organization", false),
    IcaoCode::new("XSC", "Black Sea Economic Cooperation", false),
    IcaoCode::new("XXA", "Stateless person (1954 Convention)", true),
    IcaoCode::new("XXB", "Refugee (1951 Convention)", true),
    IcaoCode::new("XXC", "Refugee (other than the 1951 Convention)", true),
    IcaoCode::new("XXX", "Unspecified nationality", true),
];

/// One ICAO special code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcaoCode {
    /// The code as written in the MRZ (before filler).
    pub code: &'static str,
    /// What it stands for.
    pub meaning: &'static str,
    /// A holder status, valid as nationality only.
    pub nationality_only: bool,
}

impl IcaoCode {
    const fn new(code: &'static str, meaning: &'static str, nationality_only: bool) -> Self {
        Self {
            code,
            meaning,
            nationality_only,
        }
    }
}

/// Whether `code` is an officially assigned ISO 3166-1 alpha-3 code (upper case only).
pub fn is_iso_alpha3(code: &str) -> bool {
    ISO_3166_ALPHA3.binary_search(&code).is_ok()
}

fn special(code: &str) -> Option<&'static IcaoCode> {
    ICAO_SPECIAL_CODES.iter().find(|c| c.code == code)
}

/// ISO codes that ICAO 9303 replaces in the MRZ, with the code to write instead.
pub const ICAO_REPLACED: &[(&str, &str)] = &[("DEU", "D")];

/// The code ICAO 9303 writes instead of this ISO code, if it replaces it (`DEU` → `D`).
pub fn icao_replacement(code: &str) -> Option<&'static str> {
    ICAO_REPLACED
        .iter()
        .find(|(iso, _)| *iso == code)
        .map(|(_, icao)| *icao)
}

/// Codes ICAO 9303 uses on specimen documents only: `UTO`, Utopia, the state of every specimen
/// in Doc 9303. A real hall never issues for it (the demo hall may). The `XX?` codes need no
/// entry: they are nationality statuses, never an issuing state ([`is_issuing_code`]).
pub const SPECIMEN_CODES: &[&str] = &["UTO"];

/// Whether `code` is a specimen code ([`SPECIMEN_CODES`]).
pub fn is_specimen_code(code: &str) -> bool {
    SPECIMEN_CODES.contains(&code)
}

/// Whether `code` may stand in the nationality field of an MRZ.
pub fn is_nationality_code(code: &str) -> bool {
    icao_replacement(code).is_none() && (is_iso_alpha3(code) || special(code).is_some())
}

/// Whether `code` may stand in the issuing state or organization field of an MRZ.
pub fn is_issuing_code(code: &str) -> bool {
    icao_replacement(code).is_none()
        && (is_iso_alpha3(code) || special(code).is_some_and(|c| !c.nationality_only))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_table_is_sorted_unique_and_well_formed() {
        assert!(
            ISO_3166_ALPHA3.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
        assert!(
            ISO_3166_ALPHA3
                .iter()
                .all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
        );
    }

    #[test]
    fn special_codes_are_not_iso_codes_and_are_unique() {
        for (i, c) in ICAO_SPECIAL_CODES.iter().enumerate() {
            assert!(!is_iso_alpha3(c.code), "{} is ISO", c.code);
            assert!(
                ICAO_SPECIAL_CODES[i + 1..].iter().all(|d| d.code != c.code),
                "{} twice",
                c.code
            );
        }
    }

    #[test]
    fn codes_by_role() {
        for (code, nationality, issuing) in [
            ("PAK", true, true),
            ("DEU", false, false),
            ("D", true, true),
            ("UTO", true, true),
            ("GBD", true, false),
            ("GBS", true, false),
            ("GBR", true, true),
            ("XPO", true, true),
            ("RKS", true, true),
            ("XXA", true, false),
            ("XXX", true, false),
            ("XKX", false, false),
            ("pak", false, false),
            ("ZZZ", false, false),
            ("", false, false),
            ("PAKI", false, false),
        ] {
            assert_eq!(is_nationality_code(code), nationality, "nationality {code}");
            assert_eq!(is_issuing_code(code), issuing, "issuing {code}");
        }
    }

    #[test]
    fn utopia_is_the_only_specimen() {
        assert!(is_specimen_code("UTO"));
        for code in ["PAK", "D", "DEU", "EUE", "XXA", "XXX", "uto", ""] {
            assert!(!is_specimen_code(code), "{code}");
        }
        let specimens: Vec<&str> = ICAO_SPECIAL_CODES
            .iter()
            .map(|c| c.code)
            .filter(|c| is_specimen_code(c))
            .collect();
        assert_eq!(specimens, ["UTO"]);
    }
}
