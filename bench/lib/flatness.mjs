// The soak's verdict on memory, by a rule written down before the figures: RSS under load is "flat" when
//  (a) the last minute's mean RSS is within 10 % of the second minute's (the first minute is warm-up: JIT,
//      pools and caches filling), and
//  (b) a least-squares line through every sample after the second minute rises by no more than 5 % of the
//      second minute's mean over that window (a saw-tooth from GC averages out; a leak does not).
// Soaks shorter than 3 minutes have no window for (b) and are not judged.

export const FLAT_RULE = 'flat = last-minute mean RSS within 10 % of the second minute\'s, and the least-squares trend of RSS after the second minute rising ≤ 5 % of the second minute\'s mean over that window; soaks under 3 min are not judged'

/** Slope (per second) of the least-squares line through the points; NaN for fewer than two. */
export function leastSquaresSlope(points) {
  const n = points.length
  if (n < 2) return NaN
  const mx = points.reduce((a, p) => a + p.t, 0) / n
  const my = points.reduce((a, p) => a + p.y, 0) / n
  let num = 0
  let den = 0
  for (const p of points) {
    num += (p.t - mx) * (p.y - my)
    den += (p.t - mx) ** 2
  }
  return den > 0 ? num / den : NaN
}

const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN)

/**
 * @param {{t:number, rssMiB:number}[]} samples  under load, t in seconds since the load started
 * @param {number} durationS  how long the load ran
 */
export function judgeFlat(samples, durationS) {
  const second = samples.filter((s) => s.t > 60 && s.t <= 120).map((s) => s.rssMiB)
  const last = samples.filter((s) => s.t > durationS - 60).map((s) => s.rssMiB)
  const window = samples.filter((s) => s.t > 120)
  const secondMean = mean(second)
  const lastMean = mean(last)
  const slopePerS = leastSquaresSlope(window.map((s) => ({ t: s.t, y: s.rssMiB })))
  const windowS = window.length > 1 ? window[window.length - 1].t - window[0].t : 0
  const trendMiB = slopePerS * windowS
  const out = {
    secondMinuteMeanMiB: secondMean, lastMinuteMeanMiB: lastMean, driftPct: (100 * (lastMean - secondMean)) / secondMean,
    trendMiBPerMin: slopePerS * 60, trendOverWindowMiB: trendMiB, windowS,
  }
  if (durationS < 180 || second.length === 0 || last.length === 0 || window.length < 2) return { ...out, flat: null, verdict: 'not judged (under 3 minutes of load)' }
  const a = Math.abs(lastMean - secondMean) <= 0.1 * secondMean
  const b = trendMiB <= 0.05 * secondMean
  const flat = a && b
  const why = [a ? null : `last minute ${lastMean.toFixed(1)} MiB vs second ${secondMean.toFixed(1)} MiB (> 10 %)`,
    b ? null : `trend +${trendMiB.toFixed(1)} MiB over the last ${Math.round(windowS / 60)} min (> 5 % of ${secondMean.toFixed(1)})`].filter(Boolean)
  return { ...out, flat, verdict: flat ? 'flat' : `NOT flat: ${why.join('; ')}` }
}
