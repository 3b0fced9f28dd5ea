//! Bars built from trades, mergeable in any order: the same trades give the
//! same bar however they were split into calls, streams and writes. The
//! database applies the same rule in its upsert (see `store`).

/// What a bar knows about its trades.
#[derive(Clone, Debug, PartialEq)]
pub struct BarState {
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    pub trade_count: i64,
    /// Time of the earliest trade, which set `open`.
    pub first_trade_ns: i64,
    /// Time of the latest trade, which set `close`.
    pub last_trade_ns: i64,
}

impl BarState {
    pub fn from_trade(time_ns: i64, price: f64, size: f64) -> Self {
        Self {
            open: price,
            high: price,
            low: price,
            close: price,
            volume: size,
            trade_count: 1,
            first_trade_ns: time_ns,
            last_trade_ns: time_ns,
        }
    }

    /// Folds `other` in. Open is the earliest trade and close the latest; at
    /// the same instant, the lower price opens and the higher closes, so that
    /// arrival order never matters.
    pub fn merge(&mut self, other: &BarState) {
        if (other.first_trade_ns, other.open) < (self.first_trade_ns, self.open) {
            self.first_trade_ns = other.first_trade_ns;
            self.open = other.open;
        }
        if (other.last_trade_ns, other.close) > (self.last_trade_ns, self.close) {
            self.last_trade_ns = other.last_trade_ns;
            self.close = other.close;
        }
        self.high = self.high.max(other.high);
        self.low = self.low.min(other.low);
        self.volume += other.volume;
        self.trade_count += other.trade_count;
    }
}

/// The latest trade and top of book of a symbol, mergeable in any order like
/// bars: the latest event wins, ties broken by the values themselves.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuoteState {
    pub last_trade: Option<LastTrade>,
    pub top_of_book: Option<TopOfBook>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LastTrade {
    pub time_ns: i64,
    pub price: f64,
    pub size: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TopOfBook {
    pub time_ns: i64,
    pub bid: f64,
    pub bid_size: f64,
    pub ask: f64,
    pub ask_size: f64,
}

impl LastTrade {
    fn order_key(&self) -> (i64, f64, f64) {
        (self.time_ns, self.price, self.size)
    }
}

impl TopOfBook {
    fn order_key(&self) -> (i64, f64, f64, f64, f64) {
        (self.time_ns, self.bid, self.ask, self.bid_size, self.ask_size)
    }
}

impl QuoteState {
    pub fn merge(&mut self, other: &QuoteState) {
        if let Some(theirs) = other.last_trade
            && self.last_trade.is_none_or(|ours| theirs.order_key() > ours.order_key())
        {
            self.last_trade = Some(theirs);
        }
        if let Some(theirs) = other.top_of_book
            && self.top_of_book.is_none_or(|ours| theirs.order_key() > ours.order_key())
        {
            self.top_of_book = Some(theirs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_order_independent() {
        let trades = [(3, 10.0, 1.0), (1, 12.0, 2.0), (2, 9.0, 1.0), (3, 11.0, 1.0), (1, 8.0, 1.0)];
        let fold = |order: &[usize]| {
            let mut bar = BarState::from_trade(trades[order[0]].0, trades[order[0]].1, trades[order[0]].2);
            for &i in &order[1..] {
                bar.merge(&BarState::from_trade(trades[i].0, trades[i].1, trades[i].2));
            }
            bar
        };
        let forward = fold(&[0, 1, 2, 3, 4]);
        assert_eq!(forward, fold(&[4, 3, 2, 1, 0]));
        assert_eq!(forward, fold(&[2, 0, 4, 1, 3]));
        // Earliest instant 1 holds 12 and 8: the lower opens. Latest instant 3
        // holds 10 and 11: the higher closes.
        assert_eq!((forward.open, forward.high, forward.low, forward.close), (8.0, 12.0, 8.0, 11.0));
        assert_eq!((forward.volume, forward.trade_count), (6.0, 5));
    }

    #[test]
    fn latest_quote_parts_win() {
        let trade = |time_ns, price| QuoteState {
            last_trade: Some(LastTrade { time_ns, price, size: 1.0 }),
            top_of_book: None,
        };
        let mut quote = trade(5, 10.0);
        quote.merge(&trade(4, 11.0));
        assert_eq!(quote.last_trade.unwrap().price, 10.0);
        quote.merge(&trade(6, 9.0));
        assert_eq!(quote.last_trade.unwrap().price, 9.0);
        let book = QuoteState {
            last_trade: None,
            top_of_book: Some(TopOfBook { time_ns: 1, bid: 1.0, bid_size: 1.0, ask: 2.0, ask_size: 1.0 }),
        };
        quote.merge(&book);
        assert_eq!(quote.last_trade.unwrap().price, 9.0);
        assert_eq!(quote.top_of_book.unwrap().bid, 1.0);
    }
}
