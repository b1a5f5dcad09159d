// Buttons that ask first: <button data-confirm="Really?">. A script file, not an onclick
// attribute, because the Content-Security-Policy allows no inline code.
document.addEventListener("click", function (event) {
  const button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
});
