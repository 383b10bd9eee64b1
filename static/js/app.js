// Helpers for the htmx polls of the review queue (no framework, no build step).
window.approvals = {
  queueVersion() {
    const queue = document.getElementById("queue");
    return queue ? queue.dataset.version : "";
  },
  // Ids of the rows on screen, so rows that leave the queue stay visible, marked decided.
  shownReviews() {
    return Array.from(document.querySelectorAll("#queue [data-review]"), (row) => row.dataset.review).join(",");
  },
  // Dates in the reader's own time zone: the server writes them in UTC ("2 Dec 2026, 17:05 UTC");
  // here they become e.g. "2 Dec 2026, 18:05 CET". Ages ("2 minutes") get the full date as a tooltip.
  localizeTimes(root) {
    const format = new Intl.DateTimeFormat(undefined, {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
    });
    root.querySelectorAll("time[datetime]").forEach((time) => {
      const when = new Date(time.getAttribute("datetime"));
      if (Number.isNaN(when.getTime())) return;
      if (time.hasAttribute("data-local")) time.textContent = format.format(when);
      else time.title = format.format(when);
    });
  },
};
document.addEventListener("DOMContentLoaded", () => window.approvals.localizeTimes(document));
document.addEventListener("htmx:load", (event) => window.approvals.localizeTimes(event.target));

// Pointing at (or focusing) a summary sentence's marker lights up its source sentences, and a
// source sentence's marker the summary sentence that used it.
function pairSentences(event, on) {
  const cite = event.target.closest && event.target.closest(".cite");
  if (!cite) return;
  const target = document.querySelector(cite.getAttribute("href"));
  if (target) target.classList.toggle("paired", on);
}
document.addEventListener("mouseover", (event) => pairSentences(event, true));
document.addEventListener("mouseout", (event) => pairSentences(event, false));
document.addEventListener("focusin", (event) => pairSentences(event, true));
document.addEventListener("focusout", (event) => pairSentences(event, false));
