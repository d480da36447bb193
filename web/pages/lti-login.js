// @ts-check
// The LTI login inside an LMS frame (server/lti/frames.py): the hub set its state cookie and a
// readable check cookie with this page. If the browser kept them, the login goes on to the platform in
// this frame; if it kept them out (third-party cookies blocked), the launch could only be refused, so
// the page offers the same login in a new window, where the cookies are first-party.
import { $ } from "../lib/dom.js";

const main = $("#lti-login");
if (document.cookie.split(";").some((c) => c.trim().startsWith("ph_lti_check="))) {
  location.replace(main.dataset.next || "/");
} else {
  $("#blocked").hidden = false;
  $("#new-window").addEventListener("click", () => {
    $("#continued").hidden = false;
  });
}
