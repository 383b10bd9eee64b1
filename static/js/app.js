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
};
