//! The C face of the in-game flows: the tablet capture parser, linking a player from the
//! tablet, the API ID checker and v2's link codes. (Exported like the rest of the C face; the
//! header is generated from this file and `mod.rs`.)

use super::boundary::{arg_handle, arg_json, arg_str, guard};
use super::callback::c_prepare;
use super::{sonoran_callback, sonoran_client};
use crate::error::Refusal;
use crate::flows::linking::PlayerIds;
use crate::flows::session::parse_session;
use std::ffi::{c_char, c_void, CString};

/// Parse a tablet login capture: the legacy console line
/// `LOGIN COMMUNITY: {..} USERNAME: {..} SESSIONID: {..}` (anywhere in the text) or the iframe
/// message `{"username": "...", "session": "..."}` as JSON text. Returns
/// `{"community": ... | null, "username": ..., "sessionId": ...}` as a new string the caller
/// frees with `sonoran_string_free`, or NULL with the reason in `sonoran_last_error()`.
#[no_mangle]
pub unsafe extern "C" fn sonoran_parse_session(text: *const c_char) -> *mut c_char {
    guard(std::ptr::null_mut(), || {
        let capture = parse_session(arg_str("text", text)?)?;
        let json = CString::new(capture.to_value().to_string()).map_err(|_| Refusal::new("capture: NUL in output"))?;
        Ok(json.into_raw())
    })
}

/// The tablet flow: parse `capture_text`, pick the player's API ID from `identifiers_json` (a
/// JSON array such as `["steam:110000112345678","license:abc"]`) by the configured
/// `primary_identifier`, and link them. Legacy API: a login capture (either form); CHECK_APIID,
/// then SET_API_ID with the captured username and session when the player is not linked yet.
/// v2: the CAD's `{"type":"scad:account-link","accountUuid":...,"secretUuid":...}` message (both
/// UUIDs checked first); `POST /v2/general/links/set` with the player's id as
/// `communityUserId` (a mismatch completes `FORBIDDEN`; the secret is redacted everywhere).
/// One result, type `LINK_FROM_TABLET`, `data` `{"outcome":"LINKED"|"ALREADY_LINKED","apiId":...}`
/// (v2 adds `accountUuid`); a player without such an identifier completes with
/// `NO_IDENTIFIER`. A capture naming another community, or the other API's capture, is
/// refused (0). Returns the request id or 0.
#[no_mangle]
pub unsafe extern "C" fn sonoran_link_from_tablet(
    c: *mut sonoran_client,
    capture_text: *const c_char,
    identifiers_json: *const c_char,
    cb: sonoran_callback,
    user_data: *mut c_void,
) -> u64 {
    guard(0, || {
        let h = arg_handle(c)?;
        let capture = parse_session(arg_str("capture_text", capture_text)?)?;
        let ids = PlayerIds::list_from_value(&arg_json("identifiers_json", identifiers_json)?)?;
        h.client.link_from_tablet_with(&capture, &ids, c_prepare(h, cb, user_data))
    })
}

/// The API ID checker: `identifiers_json` is a JSON string (a bare API ID) or an array of the
/// player's identifiers (CHECK_APIID in legacy, `links/check` in v2). One result, type
/// `IS_LINKED`, `data` `{"linked":true|false,"apiId":...}`;
/// an API or network failure is an error, never "not linked". Answers are cached for
/// `link_check_ttl_ms`, and concurrent checks of one API ID share one API call.
/// Returns the request id or 0.
#[no_mangle]
pub unsafe extern "C" fn sonoran_is_linked(
    c: *mut sonoran_client,
    identifiers_json: *const c_char,
    cb: sonoran_callback,
    user_data: *mut c_void,
) -> u64 {
    guard(0, || {
        let h = arg_handle(c)?;
        let ids = PlayerIds::from_value(&arg_json("identifiers_json", identifiers_json)?)?;
        h.client.is_linked_with(ids, c_prepare(h, cb, user_data))
    })
}

/// The v2 link code flow (`"api_version": "v2"` only): a code the player enters at
/// `sonorancad.com/id` to link their account. `identifiers_json` as for `sonoran_is_linked`.
/// One result, type `CREATE_LINK_CODE`, `data` `{"code","url","expiresAt","communityUserId"}`;
/// a code minted for the same player in the last five minutes is handed out again. Returns the
/// request id or 0.
#[no_mangle]
pub unsafe extern "C" fn sonoran_create_link_code(
    c: *mut sonoran_client,
    identifiers_json: *const c_char,
    cb: sonoran_callback,
    user_data: *mut c_void,
) -> u64 {
    guard(0, || {
        let h = arg_handle(c)?;
        let ids = PlayerIds::from_value(&arg_json("identifiers_json", identifiers_json)?)?;
        h.client.create_link_code(ids, c_prepare(h, cb, user_data))
    })
}
