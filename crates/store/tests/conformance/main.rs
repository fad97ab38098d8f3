//! The store's conformance suite: every public operation of the store, the same tests against
//! each backend (SQLite in a temporary directory, PostgreSQL in a database of its own). A
//! backend that passes them is one the host can run on.

mod connections;
mod console;
mod integrations;
mod properties;
mod records;
mod replicas;
mod support;

/// Runs each listed test against every backend, as `sqlite::<test>` and `postgres::<test>`.
macro_rules! conformance {
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let backend = crate::support::Backend::sqlite().await;
                    crate::$module::$test(&backend).await;
                    backend.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let backend = crate::support::Backend::postgres().await;
                    crate::$module::$test(&backend).await;
                    backend.finish().await;
                }
            )*
        }
    };
}

conformance! {
    connections::connections_round_trip_and_reconnect_keeps_the_row,
    connections::token_updates_are_compare_and_swap_and_keep_the_refresh_token,
    connections::refresh_failure_and_recovery_each_change_once,
    connections::leases_exclude_other_owners_until_released_or_expired,
    connections::oauth_states_are_single_use_bound_to_their_browser_and_expire,
    connections::a_connect_session_is_taken_once_until_it_expires,
    connections::rotation_moves_every_secret_to_the_active_key,
    records::crawls_delete_only_unseen_records_and_unchanged_records_are_not_rewritten,
    records::ids_with_any_characters_are_compared_and_seen_exactly,
    records::a_crawl_begun_again_forgets_what_the_abandoned_one_saw,
    records::records_hash_the_same_from_a_value_and_from_a_plugins_json,
    records::the_cursor_is_stable_while_records_are_written,
    records::sync_state_runs_and_logs_round_trip,
    records::a_run_lease_admits_one_run_until_it_finishes_or_expires,
    records::deleted_records_are_marked_once_and_listed_by_action,
    records::records_stored_plain_read_back_alike,
    records::webhook_deliveries_are_updated_in_place_and_listed_newest_first,
    replicas::replicas_opening_a_new_store_together_all_succeed,
    replicas::writes_from_two_replicas_keep_the_cursor_in_commit_order,
    replicas::a_scheduled_run_is_made_once_between_replicas,
    replicas::connection_changes_reach_other_replicas,
    replicas::concurrent_saves_of_one_connection_keep_one_row,
    replicas::a_refresh_lease_has_one_winner_among_replicas,
    replicas::an_open_store_has_a_current_schema,
    console::console_sessions_expire_and_end_at_sign_out,
    console::health_follows_reconnects_failed_runs_and_pauses,
    console::a_search_takes_wildcards_literally,
    console::keyset_paging_lists_every_connection_once_with_filters_combined,
    console::record_counts_split_live_and_deleted_per_model,
    console::record_counts_follow_every_write_of_records,
    console::newest_first_pages_list_each_record_once_while_records_are_written,
    console::a_scan_limit_bounds_each_page_and_paging_finds_every_match,
    console::activity_is_filtered_and_paged_newest_first,
    console::purging_drops_activity_past_the_kept_window,
    integrations::each_credential_notice_is_claimed_once_among_replicas,
    integrations::a_refused_credential_is_marked_and_cleared_once_among_replicas,
    properties::the_record_diff_follows_the_model,
    properties::paging_skips_and_repeats_nothing_while_records_change,
}
