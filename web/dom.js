/**
 * The two DOM helpers every panel uses.
 *
 * @module
 */

/**
 * The element with this id (the page has them all).
 * @param {string} id
 * @returns {HTMLElement}
 */
export function $(id) {
  return /** @type {HTMLElement} */ (document.getElementById(id));
}

/**
 * Sets an element's text, touching the DOM only when it changes.
 * @param {string} id
 * @param {string} text
 */
export function setText(id, text) {
  const e = $(id);
  if (e.textContent !== text) e.textContent = text;
}
