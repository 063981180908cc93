using OnionDrop.Daemon.Web;

namespace OnionDrop.Daemon.Tests;

/// <summary>The tokens of recent forms are remembered in memory for a bounded time and a bounded count, never more.</summary>
public sealed class RecentSubmissionsTests
{
    private sealed class Clock : TimeProvider
    {
        public DateTimeOffset Now = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        public override DateTimeOffset GetUtcNow() => Now;
    }

    private static async Task Remember(RecentSubmissions recent, string token)
    {
        Assert.That(await recent.ClaimAsync(token), Is.Null);
        recent.Complete(token, new ReceivedSubmission("REF-" + token, 1, 1, false));
    }

    [Test]
    public async Task A_token_is_forgotten_after_two_windows_at_most()
    {
        var clock = new Clock();
        var recent = new RecentSubmissions(clock);
        var token = RecentSubmissions.NewToken();
        await Remember(recent, token);
        clock.Now += RecentSubmissions.Window - TimeSpan.FromSeconds(1);
        Assert.That(recent.Find(token)?.Reference, Is.EqualTo("REF-" + token));
        clock.Now += TimeSpan.FromSeconds(1);
        Assert.That(recent.Find(token), Is.Not.Null, "kept one window more, in the older generation");
        clock.Now += RecentSubmissions.Window;
        Assert.That(recent.Find(token), Is.Null);
    }

    [Test]
    public async Task At_most_twice_the_capacity_is_held()
    {
        var recent = new RecentSubmissions(new Clock(), capacity: 3);
        var tokens = Enumerable.Range(0, 7).Select(_ => RecentSubmissions.NewToken()).ToList();
        foreach (var token in tokens) await Remember(recent, token);
        Assert.That(tokens.Count(t => recent.Find(t) is not null), Is.InRange(1, 6));
        Assert.That(recent.Find(tokens[0]), Is.Null, "the oldest went first");
        Assert.That(recent.Find(tokens[^1]), Is.Not.Null);
    }

    [Test]
    public async Task A_repeat_while_the_first_commits_waits_for_it_and_one_that_failed_lets_the_next_claim()
    {
        var recent = new RecentSubmissions(new Clock());
        var token = RecentSubmissions.NewToken();
        Assert.That(await recent.ClaimAsync(token), Is.Null);
        var second = recent.ClaimAsync(token);
        Assert.That(second.IsCompleted, Is.False, "it waits for the first commit's outcome");
        Assert.That(recent.Find(token), Is.Null, "not a receipt until committed");
        recent.Abandon(token);
        Assert.That(await second, Is.Null, "the first failed: the repeat claims it and commits");
        recent.Complete(token, new ReceivedSubmission("REF", 0, 0, true));
        Assert.That((await recent.ClaimAsync(token))?.Reference, Is.EqualTo("REF"));
        Assert.That(RecentSubmissions.IsToken(token) && !RecentSubmissions.IsToken(token.ToUpperInvariant()) && !RecentSubmissions.IsToken("x"), Is.True);
    }
}
