//! Which registry symbols a feed carries, and the provider's name for each
//! (BTC/USDT is Binance's BTCUSDT, Coinbase's BTC-USDT).

use std::collections::HashMap;

#[derive(Clone, Debug, Default)]
pub struct SymbolMap {
    to_provider: Vec<(String, String)>,
    to_registry: HashMap<String, String>,
}

impl SymbolMap {
    /// Parses `REGISTRY=PROVIDER` entries; a bare registry symbol takes the
    /// provider's usual spelling, `spell(symbol)`.
    pub fn parse(entries: &[String], spell: fn(&str) -> String) -> Result<Self, String> {
        let mut map = SymbolMap::default();
        for entry in entries.iter().map(|entry| entry.trim()).filter(|entry| !entry.is_empty()) {
            let (registry, provider) = match entry.split_once('=') {
                Some((registry, provider)) => (registry.trim().to_owned(), provider.trim().to_owned()),
                None => (entry.to_owned(), spell(entry)),
            };
            if registry.is_empty() || provider.is_empty() {
                return Err(format!("{entry:?}: expected REGISTRY=PROVIDER, e.g. BTC/USDT=BTCUSDT"));
            }
            if map.to_registry.insert(provider.clone(), registry.clone()).is_some() {
                return Err(format!("{provider:?} is mapped twice"));
            }
            map.to_provider.push((registry, provider));
        }
        if map.to_provider.is_empty() {
            return Err("name at least one symbol".into());
        }
        Ok(map)
    }

    /// The registry symbol of the provider's `name`; `None`: not carried.
    pub fn registry_symbol(&self, name: &str) -> Option<&str> {
        self.to_registry.get(name).map(String::as_str)
    }

    /// (registry symbol, provider name) pairs, in configured order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.to_provider.iter().map(|(registry, provider)| (registry.as_str(), provider.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concatenated(symbol: &str) -> String {
        symbol.replace('/', "")
    }

    #[test]
    fn entries_map_both_ways_with_the_providers_spelling_by_default() {
        let entries = ["BTC/USDT".to_owned(), " ETH/USDT = ETHUSDT ".to_owned(), "XAU=PAXGUSDT".to_owned()];
        let map = SymbolMap::parse(&entries, concatenated).unwrap();
        assert_eq!(
            map.pairs().collect::<Vec<_>>(),
            [("BTC/USDT", "BTCUSDT"), ("ETH/USDT", "ETHUSDT"), ("XAU", "PAXGUSDT")]
        );
        assert_eq!(map.registry_symbol("PAXGUSDT"), Some("XAU"));
        assert_eq!(map.registry_symbol("DOGEUSDT"), None);
    }

    #[test]
    fn bad_entries_are_refused_with_the_entry() {
        assert!(SymbolMap::parse(&["=BTCUSDT".to_owned()], concatenated).unwrap_err().contains("REGISTRY=PROVIDER"));
        let twice = ["BTC/USDT".to_owned(), "BTC=BTCUSDT".to_owned()];
        assert!(SymbolMap::parse(&twice, concatenated).unwrap_err().contains("mapped twice"));
        assert!(SymbolMap::parse(&[], concatenated).is_err());
    }
}
