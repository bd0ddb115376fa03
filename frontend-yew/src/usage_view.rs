//! The Usage view (`/usage`): what agents used over a range of days — the range's totals, a bar per
//! day drawn as inline SVG by the app itself (no chart library), and the totals per agent type. The
//! figures and the bars' scale come from `usage.rs`.

use agentstream_wire::{TypeUsage, UsageBucket, UsageReport};
use yew::prelude::*;

use crate::api;
use crate::time;
use crate::usage::{self, Metric};

/// The chart's size in its own units (it scales to its box).
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;

/// The ranges offered, in days.
const RANGES: [u32; 3] = [7, 30, 90];

/// One bucket's figures, as table cells.
fn cells(b: &UsageBucket) -> Html {
    let u = &b.usage;
    html! {
        <>
            <td>{ b.agents }</td>
            <td title={u.input_tokens.to_string()}>{ usage::count(u.input_tokens) }</td>
            <td title={u.output_tokens.to_string()}>{ usage::count(u.output_tokens) }</td>
            <td title={u.cache_read_tokens.to_string()}>{ usage::count(u.cache_read_tokens) }</td>
            <td title={u.cache_write_tokens.to_string()}>{ usage::count(u.cache_write_tokens) }</td>
            <td data-testid="usage-cost">{ usage::cost(u.cost_usd) }</td>
            <td>{ u.turns }</td>
            <td>{ time::duration(u.duration_ms as i64) }</td>
        </>
    }
}

fn head() -> Html {
    html! {
        <tr>
            <th></th><th>{ "agents" }</th><th>{ "in" }</th><th>{ "out" }</th><th>{ "cache read" }</th>
            <th>{ "cache write" }</th><th>{ "cost" }</th><th>{ "turns" }</th><th>{ "time" }</th>
        </tr>
    }
}

fn type_row(t: &TypeUsage) -> Html {
    html! {
        <tr data-testid="usage-type" data-type={t.agent_type.clone()}>
            <th>{ t.agent_type.clone() }</th>{ cells(&t.bucket) }
        </tr>
    }
}

/// The per-day bar chart of `metric`.
fn chart(report: &UsageReport, metric: Metric) -> Html {
    let bars = usage::bars(&report.days, metric, HEIGHT - 20.0);
    let slot = WIDTH / bars.len().max(1) as f64;
    let width = (slot * 0.8).max(1.0);
    html! {
        <svg class="usage-chart" data-testid="usage-chart" viewBox={format!("0 0 {WIDTH} {HEIGHT}")}
             preserveAspectRatio="none" role="img" aria-label={format!("{} per day", metric.label())}>
            <line x1="0" y1={(HEIGHT - 0.5).to_string()} x2={WIDTH.to_string()} y2={(HEIGHT - 0.5).to_string()} class="axis" />
            { for bars.iter().enumerate().map(|(i, bar)| {
                let x = i as f64 * slot + (slot - width) / 2.0;
                html! {
                    <rect class="bar" data-testid="usage-bar" data-day={bar.day.clone()} data-value={bar.value.to_string()}
                          x={format!("{x:.2}")} y={format!("{:.2}", HEIGHT - 1.0 - bar.height)}
                          width={format!("{width:.2}")} height={format!("{:.2}", bar.height)}>
                        <title>{ format!("{}: {}", bar.day, metric.format(bar.value)) }</title>
                    </rect>
                }
            }) }
        </svg>
    }
}

#[function_component(UsageView)]
pub fn usage_view() -> Html {
    let days = use_state(|| 30u32);
    let metric = use_state(Metric::default);
    let report = use_state(|| None::<UsageReport>);
    let error = use_state(|| None::<String>);
    // The server's today, learned from its first answer (its default range ends today, in UTC).
    let today = use_state(|| None::<String>);
    {
        let (report, error, today) = (report.clone(), error.clone(), today.clone());
        use_effect_with((*days, (*today).clone()), move |(days, known)| {
            let range = known
                .as_ref()
                .and_then(|to| Some((usage::range_start(to, *days)?, to.clone())));
            let days = *days;
            wasm_bindgen_futures::spawn_local(async move {
                // Until today is known, the server's default range (30 days) answers, and tells it.
                let ask = if days == 30 { None } else { range };
                match api::usage(ask).await {
                    Ok(r) => {
                        if today.is_none() {
                            today.set(Some(r.to.clone()));
                        }
                        error.set(None);
                        report.set(Some(r));
                    }
                    Err(e) => error.set(Some(format!("{}: {}", e.code, e.message))),
                }
            });
        });
    }
    let range_buttons = RANGES.iter().map(|&n| {
        let days_state = days.clone();
        let onclick = Callback::from(move |_: MouseEvent| days_state.set(n));
        html! {
            <button class={classes!("chip", (*days == n).then_some("on"))} data-testid="usage-range"
                    data-days={n.to_string()} onclick={onclick}>{ format!("{n} days") }</button>
        }
    });
    let metric_buttons = Metric::ALL.iter().map(|&m| {
        let metric_state = metric.clone();
        let onclick = Callback::from(move |_: MouseEvent| metric_state.set(m));
        html! {
            <button class={classes!("chip", (*metric == m).then_some("on"))} data-testid="usage-metric"
                    data-metric={m.label()} onclick={onclick}>{ m.label() }</button>
        }
    });
    html! {
        <section class="usage-view" data-testid="usage-view">
            <header class="usage-head">
                <h2>{ "Usage" }</h2>
                <div class="chips">{ for range_buttons }</div>
            </header>
            if let Some(e) = &*error {
                <div class="error-banner" role="alert">{ e.clone() }</div>
            }
            if let Some(r) = &*report {
                <p class="usage-range" data-testid="usage-range-label">
                    { format!("{} – {} (UTC)", r.from, r.to) }
                </p>
                <div class="usage-totals" data-testid="usage-totals">
                    <div><span class="figure" data-testid="usage-total-tokens">{ usage::count(usage::all_tokens(&r.total.usage)) }</span><span class="label">{ "tokens" }</span></div>
                    <div><span class="figure" data-testid="usage-total-cost">{ usage::cost(r.total.usage.cost_usd) }</span><span class="label">{ "cost" }</span></div>
                    <div><span class="figure" data-testid="usage-total-turns">{ r.total.usage.turns }</span><span class="label">{ "turns" }</span></div>
                    <div><span class="figure" data-testid="usage-total-agents">{ r.total.agents }</span><span class="label">{ "agents" }</span></div>
                </div>
                <div class="chips">{ for metric_buttons }</div>
                { chart(r, *metric) }
                <div class="usage-axis">
                    <span>{ usage::short_day(&r.from) }</span><span>{ usage::short_day(&r.to) }</span>
                </div>
                <table class="usage-table" data-testid="usage-types">
                    <thead>{ head() }</thead>
                    <tbody>
                        { for r.types.iter().map(type_row) }
                        <tr class="total" data-testid="usage-type" data-type="all"><th>{ "all" }</th>{ cells(&r.total) }</tr>
                    </tbody>
                </table>
                <p class="hint">{ "Cost is what the agent CLIs report (— where a CLI reports none). Details: docs/usage.md." }</p>
            } else if error.is_none() {
                <p class="hint">{ "Loading…" }</p>
            }
        </section>
    }
}
