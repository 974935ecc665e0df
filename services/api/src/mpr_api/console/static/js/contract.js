// The rules on job statuses, kinds and event types, as the server wrote them: every page embeds them in
// one JSON block (mpr_api/console/contract.py, from mpr_common), so that the console keeps no copy.

const block = document.getElementById("mpr-contract");
export const contract = JSON.parse(block?.textContent || "{}");

/** Every job event type of GET /api/events (job.queued, job.progress, and one per way a job ends). */
export const JOB_EVENTS = contract.job_events || [];

/** A job in one of these statuses never runs again on its own. */
export function isTerminal(status) {
  return (contract.terminal_statuses || []).includes(status);
}

/** A job in one of these statuses may be retried (POST /api/jobs/{id}/retry). */
export function isRetryable(status) {
  return (contract.retryable_statuses || []).includes(status);
}

/** The status a job event says its job is now in (job.progress: running), or undefined. */
export function eventStatus(type) {
  return (contract.event_status || {})[type];
}
