//! Every indicator the engine offers: its TA-Lib name, parameters (with
//! TA-Lib's defaults and valid ranges), outputs, and how to build its study
//! from a caller's parameters.

use std::collections::HashMap;

use wizdata::indicator::v1::{IndicatorDescriptor, IndicatorSpec, ParameterDescriptor, ParameterKind};
use wizdata_common::FieldViolations;

use crate::studies::{
    Adx, AnyStudy, Atr, Bbands, Cci, DirectionalIndex, Ema, MaType, Macd, Obv, Rsi, Side, Sma, Stoch, WillR, Wma,
};

const MAX_PERIOD: f64 = 100_000.0;
/// TA-Lib's bound for real parameters.
const MAX_REAL: f64 = 3.0e37;

struct Parameter {
    name: &'static str,
    kind: ParameterKind,
    default: f64,
    min: f64,
    max: f64,
    description: &'static str,
}

const fn period(name: &'static str, default: f64, min: f64, description: &'static str) -> Parameter {
    Parameter { name, kind: ParameterKind::Integer, default, min, max: MAX_PERIOD, description }
}

const fn ma_type(name: &'static str, description: &'static str) -> Parameter {
    Parameter { name, kind: ParameterKind::Integer, default: 0.0, min: 0.0, max: 8.0, description }
}

const fn deviations(name: &'static str, description: &'static str) -> Parameter {
    Parameter { name, kind: ParameterKind::Real, default: 2.0, min: -MAX_REAL, max: MAX_REAL, description }
}

const MA_TYPES: &str = "0 = SMA, 1 = EMA, 2 = WMA, 3 = DEMA, 4 = TEMA, 5 = TRIMA, 6 = KAMA, 8 = T3 (volume factor 0.7); 7 (MAMA) is not offered";

pub struct Indicator {
    pub name: &'static str,
    display_name: &'static str,
    description: &'static str,
    parameters: &'static [Parameter],
    pub outputs: &'static [&'static str],
    build: fn(&Values) -> Box<dyn AnyStudy>,
}

/// Parameter values by name, every one present and checked.
#[derive(Clone)]
pub struct Values(HashMap<&'static str, f64>);

impl Values {
    fn period(&self, name: &str) -> usize {
        self.0[name] as usize
    }

    fn real(&self, name: &str) -> f64 {
        self.0[name]
    }

    fn ma(&self, name: &str) -> MaType {
        MaType::from_code(self.0[name] as i64).expect("checked against the parameter's range")
    }
}

pub const INDICATORS: &[Indicator] = &[
    Indicator {
        name: "SMA",
        display_name: "Simple Moving Average",
        description: "Mean of the last time_period closes.",
        parameters: &[period("time_period", 30.0, 2.0, "Number of closes averaged")],
        outputs: &["real"],
        build: |v| Box::new(Sma::new(v.period("time_period"))),
    },
    Indicator {
        name: "EMA",
        display_name: "Exponential Moving Average",
        description: "Exponential average with k = 2 / (time_period + 1), seeded with the SMA of the first time_period closes.",
        parameters: &[period("time_period", 30.0, 2.0, "Number of closes of the seed and the smoothing")],
        outputs: &["real"],
        build: |v| Box::new(Ema::new(v.period("time_period"))),
    },
    Indicator {
        name: "WMA",
        display_name: "Weighted Moving Average",
        description: "Linearly weighted average of the last time_period closes, the newest weighing most.",
        parameters: &[period("time_period", 30.0, 2.0, "Number of closes averaged")],
        outputs: &["real"],
        build: |v| Box::new(Wma::new(v.period("time_period"))),
    },
    Indicator {
        name: "MACD",
        display_name: "Moving Average Convergence/Divergence",
        description: "Fast EMA minus slow EMA of the close, its signal EMA, and their difference.",
        parameters: &[
            period("fast_period", 12.0, 2.0, "Period of the fast EMA"),
            period("slow_period", 26.0, 2.0, "Period of the slow EMA"),
            period("signal_period", 9.0, 1.0, "Period of the signal EMA of the MACD line"),
        ],
        outputs: &["macd", "macdsignal", "macdhist"],
        build: |v| Box::new(Macd::new(v.period("fast_period"), v.period("slow_period"), v.period("signal_period"))),
    },
    Indicator {
        name: "RSI",
        display_name: "Relative Strength Index",
        description: "Wilder's RSI: 100 * average gain / (average gain + average loss), Wilder-smoothed.",
        parameters: &[period("time_period", 14.0, 2.0, "Number of changes averaged")],
        outputs: &["real"],
        build: |v| Box::new(Rsi::new(v.period("time_period"))),
    },
    Indicator {
        name: "STOCH",
        display_name: "Stochastic",
        description: "Slow %K (a moving average of fast %K) and slow %D (a moving average of slow %K).",
        parameters: &[
            period("fast_k_period", 5.0, 1.0, "Bars of the highest high and lowest low"),
            period("slow_k_period", 3.0, 1.0, "Period of the slow %K average"),
            ma_type("slow_k_ma_type", MA_TYPES),
            period("slow_d_period", 3.0, 1.0, "Period of the slow %D average"),
            ma_type("slow_d_ma_type", MA_TYPES),
        ],
        outputs: &["slowk", "slowd"],
        build: |v| {
            Box::new(Stoch::new(
                v.period("fast_k_period"),
                v.period("slow_k_period"),
                v.ma("slow_k_ma_type"),
                v.period("slow_d_period"),
                v.ma("slow_d_ma_type"),
            ))
        },
    },
    Indicator {
        name: "WILLR",
        display_name: "Williams' %R",
        description: "Where the close sits between the highest high and lowest low, from 0 (high) to -100 (low).",
        parameters: &[period("time_period", 14.0, 2.0, "Bars of the highest high and lowest low")],
        outputs: &["real"],
        build: |v| Box::new(WillR::new(v.period("time_period"))),
    },
    Indicator {
        name: "CCI",
        display_name: "Commodity Channel Index",
        description: "Distance of the typical price from its mean, in units of 0.015 mean deviations.",
        parameters: &[period("time_period", 14.0, 2.0, "Number of typical prices")],
        outputs: &["real"],
        build: |v| Box::new(Cci::new(v.period("time_period"))),
    },
    Indicator {
        name: "BBANDS",
        display_name: "Bollinger Bands",
        description: "A moving average of the close with bands a number of standard deviations above and below.",
        parameters: &[
            period("time_period", 5.0, 2.0, "Number of closes"),
            deviations("nb_dev_up", "Standard deviations of the upper band"),
            deviations("nb_dev_dn", "Standard deviations of the lower band"),
            ma_type("ma_type", MA_TYPES),
        ],
        outputs: &["upperband", "middleband", "lowerband"],
        build: |v| {
            Box::new(Bbands::new(v.period("time_period"), v.real("nb_dev_up"), v.real("nb_dev_dn"), v.ma("ma_type")))
        },
    },
    Indicator {
        name: "ATR",
        display_name: "Average True Range",
        description: "Mean of the first time_period true ranges, then Wilder-smoothed.",
        parameters: &[period("time_period", 14.0, 1.0, "Number of true ranges")],
        outputs: &["real"],
        build: |v| Box::new(Atr::new(v.period("time_period"))),
    },
    Indicator {
        name: "ADX",
        display_name: "Average Directional Movement Index",
        description: "Wilder's ADX: the smoothed average of DX = 100 * |+DI - -DI| / (+DI + -DI).",
        parameters: &[period("time_period", 14.0, 2.0, "Period of the smoothing")],
        outputs: &["real"],
        build: |v| Box::new(Adx::new(v.period("time_period"))),
    },
    Indicator {
        name: "PLUS_DI",
        display_name: "Plus Directional Indicator",
        description: "Wilder-smoothed +DM over the smoothed true range, in percent.",
        parameters: &[period("time_period", 14.0, 1.0, "Period of the smoothing")],
        outputs: &["real"],
        build: |v| Box::new(DirectionalIndex::new(Side::Plus, v.period("time_period"))),
    },
    Indicator {
        name: "MINUS_DI",
        display_name: "Minus Directional Indicator",
        description: "Wilder-smoothed -DM over the smoothed true range, in percent.",
        parameters: &[period("time_period", 14.0, 1.0, "Period of the smoothing")],
        outputs: &["real"],
        build: |v| Box::new(DirectionalIndex::new(Side::Minus, v.period("time_period"))),
    },
    Indicator {
        name: "OBV",
        display_name: "On Balance Volume",
        description: "Running volume, added on up closes and subtracted on down closes, from the first bar's volume.",
        parameters: &[],
        outputs: &["real"],
        build: |_| Box::new(Obv::default()),
    },
];

impl Indicator {
    pub fn descriptor(&self) -> IndicatorDescriptor {
        IndicatorDescriptor {
            name: self.name.into(),
            display_name: self.display_name.into(),
            description: self.description.into(),
            parameters: self
                .parameters
                .iter()
                .map(|parameter| ParameterDescriptor {
                    name: parameter.name.into(),
                    kind: parameter.kind as i32,
                    default_value: parameter.default,
                    min_value: parameter.min,
                    max_value: parameter.max,
                    description: parameter.description.into(),
                })
                .collect(),
            outputs: self.outputs.iter().map(|output| (*output).to_owned()).collect(),
        }
    }
}

/// The indicator named `name` (TA-Lib's names, any case).
pub fn find(name: &str) -> Option<&'static Indicator> {
    INDICATORS.iter().find(|indicator| indicator.name.eq_ignore_ascii_case(name.trim()))
}

/// The study for `indicator` with the caller's `parameters` (defaults for
/// the missing ones). Bad values are recorded under `field.parameters[name]`.
/// An indicator with checked parameter values, defaults filled in.
#[derive(Clone)]
pub struct Configured {
    pub indicator: &'static Indicator,
    values: Values,
    /// e.g. "RSI(time_period=14)": equal exactly for equal computations.
    pub identity: String,
}

impl Configured {
    /// A fresh study, ready for the first bar.
    pub fn study(&self) -> Box<dyn AnyStudy> {
        (self.indicator.build)(&self.values)
    }

    /// The spec under the indicator's canonical name with every parameter
    /// set: equal for every way of asking for the same computation.
    pub fn canonical_spec(&self) -> IndicatorSpec {
        IndicatorSpec {
            name: self.indicator.name.into(),
            parameters: self.values.0.iter().map(|(name, value)| ((*name).to_owned(), *value)).collect(),
        }
    }
}

/// The indicator configured with the caller's `parameters`, or `None` with
/// every problem added to `violations` under `field`.
pub fn configure(
    indicator: &'static Indicator,
    parameters: &HashMap<String, f64>,
    field: &str,
    violations: &mut FieldViolations,
) -> Option<Configured> {
    let mut values = HashMap::new();
    let mut ok = true;
    for name in parameters.keys() {
        if !indicator.parameters.iter().any(|parameter| parameter.name == name) {
            let known: Vec<&str> = indicator.parameters.iter().map(|parameter| parameter.name).collect();
            violations.add(
                format!("{field}.parameters[{name}]"),
                format!("{} has no parameter {name:?}; it takes {known:?}", indicator.name),
            );
            ok = false;
        }
    }
    for parameter in indicator.parameters {
        let value = parameters.get(parameter.name).copied().unwrap_or(parameter.default);
        let problem = if !value.is_finite() {
            Some(format!("{value} is not a finite number"))
        } else if parameter.kind == ParameterKind::Integer && value.fract() != 0.0 {
            Some(format!("{value} is not a whole number"))
        } else if value < parameter.min || value > parameter.max {
            Some(format!("{value} is outside {}..={}", parameter.min, parameter.max))
        } else if parameter.name.ends_with("ma_type") && MaType::from_code(value as i64).is_none() {
            Some(format!("{value} is not an MA type this engine offers: {MA_TYPES}"))
        } else {
            None
        };
        match problem {
            Some(problem) => {
                violations.add(format!("{field}.parameters[{}]", parameter.name), problem);
                ok = false;
            }
            None => {
                values.insert(parameter.name, value);
            }
        }
    }
    if !ok {
        return None;
    }
    let resolved: Vec<String> =
        indicator.parameters.iter().map(|parameter| format!("{}={}", parameter.name, values[parameter.name])).collect();
    Some(Configured {
        indicator,
        values: Values(values),
        identity: format!("{}({})", indicator.name, resolved.join(",")),
    })
}
