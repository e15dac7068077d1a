// idlora-bench leaderboard: sortable tables (no dependencies, nothing loaded from the network).
// A header with data-sort="number" sorts by its cells' data-value (empty = no value: always last);
// data-sort="text" by data-value or the cell text. Click (or Enter) toggles ascending / descending;
// the sorted header carries aria-sort.
"use strict";

function cellKey(cell, numeric) {
  const raw = cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent.trim();
  if (!numeric) return raw.toLowerCase();
  const number = parseFloat(raw);
  return Number.isFinite(number) ? number : null;
}

function sortTable(table, index, header) {
  const body = table.tBodies[0];
  const numeric = header.dataset.sort === "number";
  const ascending = header.getAttribute("aria-sort") !== "ascending";
  const rows = Array.from(body.rows).map((row, position) => ({row, position, key: cellKey(row.cells[index], numeric)}));
  rows.sort((a, b) => {
    if (a.key === null && b.key === null) return a.position - b.position;
    if (a.key === null) return 1;
    if (b.key === null) return -1;
    const order = a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
    return (ascending ? order : -order) || a.position - b.position;
  });
  for (const other of table.tHead.rows[0].cells) other.removeAttribute("aria-sort");
  header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  for (const item of rows) body.appendChild(item.row);
}

function makeSortable(table) {
  const headers = table.tHead ? Array.from(table.tHead.rows[0].cells) : [];
  headers.forEach((header, index) => {
    if (!header.dataset.sort) return;
    header.tabIndex = 0;
    header.classList.add("sortable-header");
    header.addEventListener("click", () => sortTable(table, index, header));
    header.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        sortTable(table, index, header);
      }
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("table.sortable").forEach(makeSortable);
});
