using OnionDrop.Daemon.Web;

namespace OnionDrop.Daemon.Tests;

public class ResponseDateTests
{
    private static readonly DateOnly Day = new(2026, 12, 2);

    [Test]
    public void Shows_the_previous_day_until_the_days_lag_has_passed_then_this_day_never_a_time()
    {
        var lag = TimeSpan.FromMinutes(73);
        var now = DateTimeOffset.MinValue;
        var date = new ResponseDate(() => now, d => d == Day ? lag : TimeSpan.Zero);
        var midnight = new DateTimeOffset(Day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);

        now = midnight.AddSeconds(-1);
        Assert.That(date.Value(), Is.EqualTo("Tue, 01 Dec 2026 00:00:00 GMT"), "the day before");
        now = midnight;
        Assert.That(date.Value(), Is.EqualTo("Tue, 01 Dec 2026 00:00:00 GMT"), "midnight itself gives nothing away");
        now = midnight + lag - TimeSpan.FromSeconds(1);
        Assert.That(date.Value(), Is.EqualTo("Tue, 01 Dec 2026 00:00:00 GMT"));
        now = midnight + lag;
        Assert.That(date.Value(), Is.EqualTo("Wed, 02 Dec 2026 00:00:00 GMT"), "the day turns at its lag");
        now = midnight.AddHours(23).AddMinutes(59).AddSeconds(59);
        Assert.That(date.Value(), Is.EqualTo("Wed, 02 Dec 2026 00:00:00 GMT"));
    }

    [Test]
    public void A_time_zone_in_the_clock_changes_nothing()
    {
        var instant = new DateTimeOffset(2026, 12, 2, 12, 0, 0, TimeSpan.Zero);
        var utc = new ResponseDate(() => instant, _ => TimeSpan.Zero);
        var paris = new ResponseDate(() => instant.ToOffset(TimeSpan.FromHours(1)), _ => TimeSpan.Zero);
        Assert.That(paris.Value(), Is.EqualTo(utc.Value()));
    }

    [Test]
    public void Each_day_keeps_one_secret_lag_under_the_maximum_and_days_differ()
    {
        var lagOf = ResponseDate.RandomLag();
        var lags = Enumerable.Range(0, 50).Select(i => lagOf(Day.AddDays(i))).ToList();
        Assert.That(lags, Has.All.GreaterThanOrEqualTo(TimeSpan.Zero).And.LessThan(ResponseDate.MaxLag));
        Assert.That(lags.Distinct().Count(), Is.GreaterThan(40), "drawn afresh for each day (7,200 possible values)");
        Assert.That(lagOf(Day.AddDays(49)), Is.EqualTo(lags[^1]), "asked again the same day: the same lag");
    }
}
